// Who may connect (Origin, Host, token), malformed frames, quotas, dead and slow peers, HTTP
// timeouts and malformed upgrades, model faults, and secrets that never leave the server. MCP
// children and the filesystem are in mcp-children.test.ts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, rmSync } from "node:fs";
import type net from "node:net";
import path from "node:path";
import { WebSocket } from "ws";
import {
  startModelServer,
  lastUserText,
  toolDirective,
  type ModelServer,
  type ChatRequest,
  type ScriptedReply,
} from "../helpers/model-server.ts";
import {
  ask,
  baseConfig,
  connect,
  connectUser,
  makeConfigDir,
  readLog,
  ROOT,
  spawnServer,
  startServer,
  testServerEntry,
  TestClient,
  until,
  type Frame,
  type RunningServer,
} from "../helpers/harness.ts";
import { buildFrame, rawExchange, rawHandshake, rawRequest, upgradeHeaders, upgradeRequest } from "../helpers/raw-ws.ts";

// ---- the scripted model -------------------------------------------------------------------------
// The user's text says what the model does, so every server of this file can share one model.

const API_KEY = "sk-hardening-SECRET-0123456789abcdef";
const gates = new Map<string, { promise: Promise<void>; open: () => void }>();
function gate(key: string) {
  let entry = gates.get(key);
  if (!entry) {
    let open = () => {};
    const promise = new Promise<void>((resolve) => (open = resolve));
    entry = { promise, open };
    gates.set(key, entry);
  }
  return entry;
}
/** When each attempt of a RETRY key reached the model. */
const attempts = new Map<string, number[]>();

async function respond(request: ChatRequest): Promise<ScriptedReply> {
  const directive = toolDirective(request);
  if (directive) return directive;
  const text = lastUserText(request);
  const [word = "", arg = ""] = text.split(" ");
  switch (word) {
    case "BLOCK":
      await gate(arg).promise;
      return { content: `unblocked ${arg}` };
    case "RETRY": {
      // RETRY <key> <status> <retry-after>: fails once with that status, then answers.
      const [, key = "", status = "429", after = "0"] = text.split(" ");
      const times = attempts.get(key) ?? [];
      attempts.set(key, times);
      const count = times.push(Date.now());
      if (count === 1) return { status: Number(status), errorMessage: "slow down", headers: { "retry-after": after } };
      return { content: `answered after ${count} attempts` };
    }
    case "HANG":
      return { hang: true };
    case "BREAK":
      return { content: "this answer is cut off half way through ".repeat(5), chunkChars: 8, chunkDelayMs: 20, breakAfterChunks: 4 };
    case "LEAK":
      return { status: 401, errorMessage: `Incorrect API key provided: ${API_KEY}. You can find your API key at https://example.invalid` };
    case "LONG":
      return { content: longText(Number(arg)), chunkChars: 16384 };
    default:
      return { content: `echo: ${text}` };
  }
}

function longText(chars: number): string {
  const unit = "0123456789abcdefghijklmnopqrstuvwxyz\n";
  return unit.repeat(Math.ceil(chars / unit.length)).slice(0, chars);
}

// ---- servers ------------------------------------------------------------------------------------

const ALLOWED_ORIGIN = "http://allowed.example:3000";
const TOKEN = "tok-hardening-7f3a9c";

let model: ModelServer;
/** Origins, hosts, frames, socket quota, queue, heartbeat, HTTP timeouts, stream breaks. */
let main: RunningServer;
let guarded: RunningServer;
let capped: RunningServer;
let limited: RunningServer;
let slow: RunningServer;
let timeouts: RunningServer;
let retrying: RunningServer;
let secret: RunningServer;
let bystander: TestClient;

function config(extra: Record<string, unknown>, openai: Record<string, unknown> = {}, servers: Record<string, unknown> = {}) {
  const base = baseConfig(model.baseUrl, servers, { session: { store: "memory" }, ...extra });
  return { ...base, openai: { ...base.openai, ...openai } };
}

before(async () => {
  model = await startModelServer({ responder: respond });
  const secrets = { openai: { api_key: API_KEY } };
  [main, guarded, capped, limited, slow, timeouts, retrying, secret] = await Promise.all([
    startServer({
      config: config({
        server: {
          allowed_origins: [ALLOWED_ORIGIN],
          allowed_hosts: ["myhost.local"],
          ping_interval_seconds: 1, // short for the heartbeat test; not so short that a busy test process loses its bystander
          headers_timeout_seconds: 0.5,
          request_timeout_seconds: 1,
        },
        limits: { max_sockets_per_user: 2, max_message_chars: 1000, max_queued_turns: 1, messages_per_minute: 6000, message_burst: 100 },
      }),
      secrets,
    }),
    startServer({ config: config({ server: { auth_token: TOKEN } }), secrets }),
    startServer({ config: config({ limits: { max_sessions: 2 } }), secrets }),
    startServer({ config: config({ limits: { messages_per_minute: 6, message_burst: 2 } }), secrets }),
    // Answers of 8 MiB, past the default limits.max_answer_chars, to fill send buffers.
    startServer({
      config: config({
        limits: {
          send_buffer_soft_bytes: 16 * 1024,
          send_buffer_hard_bytes: 256 * 1024,
          max_answer_chars: 16 * 1024 * 1024,
          max_turn_output_chars: 32 * 1024 * 1024,
          history_page_chars: 32 * 1024 * 1024,
        },
      }),
      secrets,
    }),
    startServer({ config: config({}, { request_timeout_seconds: 0.5, max_retries: 0 }), secrets }),
    startServer({ config: config({}, { max_retries: 2 }), secrets }),
    startServer({ config: config({}, {}, { test: testServerEntry }), secrets }),
  ]);
  bystander = (await connectUser(main, "bystander")).client;
  assert.equal((await ask(bystander, "hello")).message, "echo: hello");
});

after(async () => {
  for (const entry of gates.values()) entry.open();
  await bystander?.close();
  await Promise.all([main, guarded, capped, limited, slow, timeouts, retrying, secret].map((running) => running?.close()));
  await model?.close();
});

let askCount = 0;
/** The server is up and another user's turn completes. */
async function stillServing(running: RunningServer = main, client: TestClient = bystander): Promise<void> {
  const health = await fetch(`${running.url}/health`);
  assert.equal(health.status, 200);
  const text = `are you there ${++askCount}`;
  assert.deepEqual((await ask(client, text)).message, `echo: ${text}`);
}

interface Info {
  session_id: string;
  open_sockets: number;
  turn_running: boolean;
  mcp_servers: { name: string; state: string; pid?: number }[];
}
async function sessionInfo(running: RunningServer, userId: string): Promise<Info> {
  const response = await fetch(`${running.url}/sessions/${userId}`);
  assert.equal(response.status, 200, `/sessions/${userId}`);
  return (await response.json()) as Info;
}

const hostOf = (running: RunningServer) => new URL(running.url).host;

// ---- 1. Origin ----------------------------------------------------------------------------------

test("an upgrade from a foreign Origin is refused with 403 JSON before the upgrade", async () => {
  for (const origin of ["http://evil.example", "null", `http://localhost:${new URL(main.url).port}`, "http://127.0.0.1:1"]) {
    const answer = await rawRequest(main.url, "/ws/origin_user", { headers: upgradeHeaders(hostOf(main), { origin }) });
    assert.equal(answer.status, 403, origin);
    assert.match(String(answer.headers["content-type"]), /^application\/json/);
    assert.match(String(answer.json?.error), /Origin .* is not allowed/);
  }
  assert.equal(main.server.sessions.get("origin_user"), undefined, "a refused upgrade makes no session");
});

test("the server's own origin, a listed origin and no Origin at all are let in", async () => {
  for (const origin of [main.url, ALLOWED_ORIGIN, undefined]) {
    const client = await connect(main.wsUrl("origin_ok"), origin ? { origin } : {});
    assert.equal((await client.next()).user_id, "origin_ok", String(origin));
    await client.close();
  }
  // The raw view: the upgrade answer is 101.
  const answer = await rawRequest(main.url, "/ws/origin_ok", { headers: upgradeHeaders(hostOf(main), { origin: main.url }) });
  assert.equal(answer.status, 101);
});

// ---- 2. Host (DNS rebinding) ----------------------------------------------------------------------

test("while bound to loopback, a foreign Host is refused on every route, HTTP and upgrade", async () => {
  const port = new URL(main.url).port;
  for (const host of ["evil.example", `evil.example:${port}`, `127.0.0.1.nip.example:${port}`, `localhost.evil.example:${port}`]) {
    for (const pathname of ["/", "/health", "/sessions", "/sessions/bystander", "/no/such/path", "/vendor/marked.js"]) {
      const answer = await rawRequest(main.url, pathname, { headers: { host } });
      assert.equal(answer.status, 403, `${host} ${pathname}`);
      assert.match(String(answer.json?.error), /Host .* is not allowed/);
      assert.doesNotMatch(answer.text, /bystander/, "nothing of the session leaks");
    }
    const upgrade = await rawRequest(main.url, "/ws/rebound", { headers: upgradeHeaders(host) });
    assert.equal(upgrade.status, 403, `${host} upgrade`);
    assert.match(String(upgrade.json?.error), /Host .* is not allowed/);
  }
  assert.equal(main.server.sessions.get("rebound"), undefined);
});

test("loopback names on any port and server.allowed_hosts are answered", async () => {
  for (const host of [
    "localhost",
    "localhost:1",
    "127.0.0.1:9",
    "[::1]:8000",
    "[::1]",
    "LOCALHOST:80",
    "myhost.local",
    "myhost.local:8443",
  ]) {
    assert.equal((await rawRequest(main.url, "/health", { headers: { host } })).status, 200, host);
  }
  assert.equal((await rawRequest(main.url, "/ws/host_ok", { headers: upgradeHeaders("myhost.local:1234") })).status, 101);
});

// ---- 3. Token -----------------------------------------------------------------------------------

test("with server.auth_token, /ws/* and /sessions* need the token; /health stays open", async () => {
  const host = hostOf(guarded);
  const refused = [
    { path: "/ws/tok_user", headers: upgradeHeaders(host) },
    { path: "/ws/tok_user", headers: upgradeHeaders(host, { authorization: "Bearer wrong" }) },
    { path: "/ws/tok_user?token=wrong", headers: upgradeHeaders(host) },
    { path: `/ws/tok_user?token=${TOKEN}x`, headers: upgradeHeaders(host) },
    { path: "/ws/tok_user", headers: upgradeHeaders(host, { authorization: `Basic ${TOKEN}` }) },
  ];
  for (const attempt of refused) {
    const answer = await rawRequest(guarded.url, attempt.path, { headers: attempt.headers });
    assert.equal(answer.status, 401, JSON.stringify(attempt));
    assert.match(String(answer.json?.error), /requires a token/);
  }
  for (const pathname of ["/sessions", "/sessions/tok_user", "/sessions?token=wrong"]) {
    const answer = await rawRequest(guarded.url, pathname, { headers: { host } });
    assert.equal(answer.status, 401, pathname);
    assert.equal(answer.headers["www-authenticate"], "Bearer");
    assert.equal((await rawRequest(guarded.url, pathname, { headers: { host, authorization: "Bearer nope" } })).status, 401);
  }
  assert.equal(guarded.server.sessions.get("tok_user"), undefined);
  // /health needs nothing.
  assert.equal((await rawRequest(guarded.url, "/health", { headers: { host } })).status, 200);
  // The right token, either way, lets in.
  const byQuery = await connectUser(guarded, "tok_user", `?token=${TOKEN}`);
  assert.equal(byQuery.welcome.user_id, "tok_user");
  const byHeader = await connect(guarded.wsUrl("tok_user"), { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal((await byHeader.next()).session_id, byQuery.welcome.session_id);
  assert.equal((await ask(byHeader, "with token")).message, "echo: with token");
  assert.equal((await rawRequest(guarded.url, "/sessions", { headers: { host, authorization: `Bearer ${TOKEN}` } })).status, 200);
  assert.equal((await rawRequest(guarded.url, `/sessions/tok_user?token=${TOKEN}`, { headers: { host } })).status, 200);
  await byQuery.client.close();
  await byHeader.close();
});

test("binding a non-loopback host without a token prints a warning; with a token it does not", async () => {
  const dir = makeConfigDir({ config: { logger: { transports: ["none"] }, session: { store: "memory" } } });
  const configPath = path.join(dir, "mcp_agent.config.yaml");
  const start = (env: Record<string, string>) => spawnServer(["--host", "0.0.0.0", "--port", "0", "--config", configPath], env);
  const open = start({});
  const closed = start({ MCP_AGENT_AUTH_TOKEN: TOKEN });
  try {
    await Promise.all([open.ready, closed.ready]);
    // The last start-up line (no API key is set) comes after the warning, if there is one.
    await Promise.all([open, closed].map((server) => until(() => server.stdout().includes("No OpenAI API key"), "start-up output", 20000)));
    assert.match(open.stdout(), /Warning: listening on 0\.0\.0\.0.*without a token/);
    assert.doesNotMatch(closed.stdout(), /Warning/);
    // Not bound to loopback: the Host check is off, the token is what protects it.
    const port = new URL(closed.url).port;
    assert.equal((await fetch(`http://127.0.0.1:${port}/sessions`)).status, 401);
  } finally {
    for (const server of [open, closed]) server.child.kill("SIGTERM");
    await Promise.all([open.exited, closed.exited]);
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- 4. Frames ----------------------------------------------------------------------------------

test("ws is at least 8.23", () => {
  const { version } = JSON.parse(readFileSync(path.join(ROOT, "node_modules/ws/package.json"), "utf8")) as { version: string };
  const [major = 0, minor = 0] = version.split(".").map(Number);
  assert.ok(major > 8 || (major === 8 && minor >= 23), `ws ${version}`);
});

test("a frame over maxPayload (1 MiB by default) closes that socket with 1009 and never reaches the model", async () => {
  const requests = model.requests.length;
  const { client } = await connectUser(main, "big_frame");
  client.send({ message: "x".repeat(2 * 1024 * 1024) });
  const closed = await client.closed;
  assert.equal(closed.code, 1009);
  assert.equal(model.requests.length, requests);
  await stillServing();
});

test("a message longer than limits.max_message_chars gets an error frame; the socket stays open", async () => {
  const { client } = await connectUser(main, "long_message");
  const refused = await ask(client, "y".repeat(1001));
  assert.match(String(refused.error), /too long: 1001 characters.*limit is 1000 \(limits\.max_message_chars\)/);
  assert.equal(refused.code, "message_too_long");
  assert.equal((await ask(client, "short")).message, "echo: short");
  assert.ok(!model.requests.some((request) => lastUserText(request).startsWith("yyyy")));
  await client.close();
});

test("permessage-deflate is off: an offer of it gets no Sec-WebSocket-Extensions back", async () => {
  const raw = await rawHandshake(main.url, "/ws/deflate", {
    headers: upgradeHeaders(hostOf(main), { "sec-websocket-extensions": "permessage-deflate; client_max_window_bits" }),
  });
  assert.equal(raw.status, 101);
  assert.doesNotMatch(raw.responseHead, /sec-websocket-extensions/i);
  raw.destroy();
  // The ws client offers it by default, and gets none.
  const client = new TestClient(main.wsUrl("deflate"), { perMessageDeflate: true });
  const response = new Promise<Record<string, unknown>>((resolve) => client.ws.once("upgrade", (res) => resolve(res.headers)));
  await client.opened();
  assert.equal((await response)["sec-websocket-extensions"], undefined);
  assert.equal(client.ws.extensions, "");
  await client.close();
});

const MiB = 1024 * 1024;
const malformedFrames: { name: string; bytes: () => Buffer; code: number }[] = [
  {
    name: "invalid UTF-8 in a text frame",
    bytes: () => buildFrame({ payload: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]) }),
    code: 1007,
  },
  { name: "RSV1 set without an extension", bytes: () => buildFrame({ rsv1: true, payload: '{"message":"rsv1"}' }), code: 1002 },
  { name: "unknown opcode 0x3", bytes: () => buildFrame({ opcode: 0x3, payload: '{"message":"op3"}' }), code: 1002 },
  { name: "an unmasked client frame", bytes: () => buildFrame({ mask: false, payload: '{"message":"unmasked"}' }), code: 1002 },
  { name: "a continuation frame without a start", bytes: () => buildFrame({ opcode: 0x0, payload: '{"message":"cont"}' }), code: 1002 },
  {
    name: "a fragment flood past maxPayload in total",
    bytes: () => {
      const piece = Buffer.alloc(64 * 1024, 0x61);
      const frames = [buildFrame({ opcode: 0x1, fin: false, payload: piece })];
      for (let total = piece.length; total <= 1.1 * MiB; total += piece.length)
        frames.push(buildFrame({ opcode: 0x0, fin: false, payload: piece }));
      return Buffer.concat(frames);
    },
    code: 1009,
  },
  { name: "an oversize declared length (4 GiB, no payload)", bytes: () => buildFrame({ declaredLength: 2 ** 32 }), code: 1009 },
  { name: "a ping with a payload over 125 bytes", bytes: () => buildFrame({ opcode: 0x9, payload: Buffer.alloc(200) }), code: 1002 },
  { name: "a fragmented control frame", bytes: () => buildFrame({ opcode: 0x9, fin: false, payload: "p" }), code: 1002 },
];

for (const [index, malformed] of malformedFrames.entries()) {
  test(`raw frames: ${malformed.name} → close ${malformed.code}; the server stays up`, async () => {
    const requests = model.requests.length;
    const raw = await rawHandshake(main.url, `/ws/raw_frame_${index}`);
    await raw.waitFor(() => raw.messages.length === 1);
    assert.equal(raw.messages[0]?.user_id, `raw_frame_${index}`);
    raw.write(malformed.bytes());
    const close = await raw.closeFrame();
    assert.equal(close.code, malformed.code, `${malformed.name}: ${close.reason}`);
    await until(() => raw.socket.destroyed || raw.socket.readableEnded, "the server to end the connection");
    raw.destroy();
    // Nothing of it reached the session: no answer, no error frame, no model call.
    assert.equal(raw.messages.length, 1, JSON.stringify(raw.messages));
    assert.equal(model.requests.length, requests);
    await stillServing();
  });
}

// ---- 5. Quotas ----------------------------------------------------------------------------------

test("the socket over limits.max_sockets_per_user is closed with 1013 and a reason; the others go on", async () => {
  const first = await connectUser(main, "many_sockets");
  const second = await connectUser(main, "many_sockets");
  const third = new TestClient(main.wsUrl("many_sockets"));
  const closed = await third.closed;
  assert.equal(closed.code, 1013);
  assert.match(closed.reason, /^too_many_sockets: too many sockets.*limits\.max_sockets_per_user/);
  assert.equal(third.frames.length, 0, "no welcome");
  assert.equal((await ask(first.client, "first still here")).message, "echo: first still here");
  assert.equal((await ask(second.client, "second too")).message, "echo: second too");
  await stillServing();
  // A slot freed is a slot to use.
  await second.client.close();
  await until(async () => (await sessionInfo(main, "many_sockets")).open_sockets === 1, "the server to see the close");
  const again = await connectUser(main, "many_sockets");
  assert.equal(again.welcome.session_id, first.welcome.session_id);
  await again.client.close();
  await first.client.close();
});

test("concurrent first sockets of a new user: only limits.max_sockets_per_user get in", async () => {
  const clients = Array.from({ length: 5 }, () => new TestClient(main.wsUrl("stampede")));
  try {
    const outcomes = await Promise.all(
      clients.map(async (client) => {
        const first = await Promise.race([client.next().catch(() => undefined), client.closed]);
        return first && "code" in first ? `closed ${String(first.code)}` : "welcomed";
      }),
    );
    assert.deepEqual(outcomes.sort(), ["closed 1013", "closed 1013", "closed 1013", "welcomed", "welcomed"]);
    await until(async () => (await sessionInfo(main, "stampede")).open_sockets === 2, "two sockets attached");
  } finally {
    await Promise.all(clients.map((client) => client.close()));
  }
});

test("a new user over limits.max_sessions is closed with 1013; existing users still connect and chat", async () => {
  const alice = await connectUser(capped, "alice");
  const bob = await connectUser(capped, "bob");
  // Only sessions that hold resources count: both have chatted.
  assert.equal((await ask(alice.client, "alice first")).message, "echo: alice first");
  assert.equal((await ask(bob.client, "bob first")).message, "echo: bob first");
  const carol = new TestClient(capped.wsUrl("carol"));
  const closed = await carol.closed;
  assert.equal(closed.code, 1013);
  assert.match(closed.reason, /^too_many_sessions: .*limits\.max_sessions/);
  assert.equal(capped.server.sessions.get("carol"), undefined);
  assert.equal((await ask(alice.client, "alice here")).message, "echo: alice here");
  const bobAgain = await connectUser(capped, "bob");
  assert.equal(bobAgain.welcome.session_id, bob.welcome.session_id);
  assert.equal((await ask(bobAgain.client, "bob here")).message, "echo: bob here");
  await Promise.all([alice.client.close(), bob.client.close(), bobAgain.client.close()]);
});

test("messages past limits.max_queued_turns get an error frame naming it; other users are not held up", async () => {
  const { client } = await connectUser(main, "queuer");
  client.send({ message: "BLOCK queue" });
  await until(() => model.requests.some((request) => lastUserText(request) === "BLOCK queue"), "the first turn to reach the model");
  client.send({ message: "queued one" });
  client.send({ message: "one too many" });
  const refused = await client.next();
  assert.match(String(refused.error), /limits\.max_queued_turns/);
  assert.equal(refused.code, "queue_full");
  // The running turn is still blocked, and another user's turn completes meanwhile.
  assert.equal((await sessionInfo(main, "queuer")).turn_running, true);
  await stillServing();
  gate("queue").open();
  assert.equal((await client.next()).message, "unblocked queue");
  assert.equal((await client.next()).message, "echo: queued one");
  assert.ok(!model.requests.some((request) => lastUserText(request) === "one too many"));
  await client.close();
});

test("the per-user message rate limit answers 'Retry in N s'; other users are not limited", async () => {
  const { client } = await connectUser(limited, "chatty");
  const other = await connectUser(limited, "quiet");
  client.send({ message: "one" });
  client.send({ message: "two" });
  client.send({ message: "three" });
  const frames = [await client.next(), await client.next(), await client.next()];
  const refused = frames.find((frame) => frame.error !== undefined);
  assert.match(String(refused?.error), /limit is 6 per minute \(limits\.messages_per_minute\)\. Retry in (\d+) s/);
  assert.equal(refused?.code, "rate_limited");
  const seconds = Number(/Retry in (\d+) s/.exec(String(refused?.error))?.[1]);
  assert.ok(seconds >= 1 && seconds <= 10, `retry in ${seconds} s`);
  assert.deepEqual(
    frames
      .filter((frame) => frame.message !== undefined)
      .map((frame) => frame.message)
      .sort(),
    ["echo: one", "echo: two"],
  );
  assert.equal((await ask(other.client, "not limited")).message, "echo: not limited");
  await client.close();
  await other.client.close();
});

// ---- 6. Dead and slow peers -----------------------------------------------------------------------

test("a client that does not answer pings is terminated; a well-behaved one stays across many intervals", async () => {
  const good = await connectUser(main, "pong_user");
  let pings = 0;
  const fivePings = new Promise<void>((resolve) =>
    good.client.ws.on("ping", () => {
      if (++pings === 5) resolve();
    }),
  );
  const deaf = new TestClient(main.wsUrl("deaf_user"), { autoPong: false });
  await deaf.opened();
  const closed = await deaf.closed;
  assert.equal(closed.code, 1006, "terminated, not closed politely");
  await until(() => readLog(main.logPath).some((line) => line.event === "socket_timeout"), "socket_timeout in the log");
  await fivePings;
  assert.equal(good.client.ws.readyState, WebSocket.OPEN);
  assert.equal((await ask(good.client, "still here")).message, "echo: still here");
  await good.client.close();
});

test("a reader past limits.send_buffer_hard_bytes is dropped; the turn still completes into the history", async () => {
  const size = 8 * MiB;
  const { client } = await connectUser(slow, "slow_reader", "?stream=1");
  const socket = (client.ws as unknown as { _socket: net.Socket })._socket;
  socket.pause();
  client.send({ message: `LONG ${size}` });
  try {
    await until(() => readLog(slow.logPath).some((line) => line.event === "slow_socket_dropped"), "the slow socket to be dropped", 20000);
    await until(async () => (await sessionInfo(slow, "slow_reader")).open_sockets === 0, "the server to let the socket go");
    await until(async () => !(await sessionInfo(slow, "slow_reader")).turn_running, "the turn to finish", 20000);
    const fresh = await connectUser(slow, "slow_reader", "?stream=1");
    fresh.client.send({ type: "history" });
    const history = await fresh.client.nextMatching((frame) => frame.type === "history");
    const items = history.items as Frame[];
    assert.equal(items.at(-1)?.role, "assistant");
    assert.equal(items.at(-1)?.content, longText(size));
    await fresh.client.close();
  } finally {
    client.ws.terminate();
  }
});

// ---- 7. HTTP ------------------------------------------------------------------------------------

test("a slowloris client that never finishes its request is cut off after headers_timeout_seconds", async () => {
  const host = hostOf(main);
  const partialHeaders = await rawExchange(main.url, `GET /health HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `, 5000);
  assert.ok(partialHeaders.closedAfterMs < 5000);
  assert.ok(partialHeaders.closedAfterMs >= 400, `closed after ${partialHeaders.closedAfterMs} ms`);
  const partialLine = await rawExchange(main.url, "GET /hea", 5000);
  assert.ok(partialLine.closedAfterMs < 5000);
  await stillServing();
});

test("malformed upgrade requests get 400 with a JSON error; the server stays up", async () => {
  const host = hostOf(main);
  const cases: { name: string; method: string; headers: Record<string, string>; error: RegExp }[] = [
    {
      name: "missing Sec-WebSocket-Key",
      method: "GET",
      headers: Object.fromEntries(Object.entries(upgradeHeaders(host)).filter(([name]) => name !== "sec-websocket-key")),
      error: /Sec-WebSocket-Key/,
    },
    {
      name: "invalid Sec-WebSocket-Key",
      method: "GET",
      headers: upgradeHeaders(host, { "sec-websocket-key": "not-a-key" }),
      error: /Sec-WebSocket-Key/,
    },
    {
      name: "wrong Sec-WebSocket-Version",
      method: "GET",
      headers: upgradeHeaders(host, { "sec-websocket-version": "8" }),
      error: /Sec-WebSocket-Version/,
    },
    { name: "POST with Upgrade headers", method: "POST", headers: upgradeHeaders(host, { "content-length": "0" }), error: /must be a GET/ },
    { name: "Upgrade to something else", method: "GET", headers: upgradeHeaders(host, { upgrade: "h2c" }), error: /Upgrade header/ },
  ];
  for (const bad of cases) {
    const answer = await rawExchange(main.url, upgradeRequest(bad.method, "/ws/malformed", bad.headers));
    assert.equal(answer.status, 400, `${bad.name}: ${answer.text}`);
    assert.match(answer.text, /content-type: application\/json/i);
    assert.match(String(answer.json?.error), bad.error, bad.name);
  }
  // Not HTTP at all.
  const garbage = await rawExchange(main.url, "\x16\x03\x01\x02\x00garbage\r\n\r\n");
  assert.equal(garbage.status, 400);
  assert.equal(main.server.sessions.get("malformed"), undefined);
  await stillServing();
});

// ---- 9. Model faults --------------------------------------------------------------------------------

test("openai.request_timeout_seconds: a model that never answers ends the turn with a timeout error", async () => {
  const { client } = await connectUser(timeouts, "waiter");
  const started = Date.now();
  const answer = await ask(client, "HANG");
  assert.match(String(answer.error), /^An error occurred: .*timed out/i);
  assert.ok(Date.now() - started < 5000);
  // The session goes on.
  assert.equal((await ask(client, "after the timeout")).message, "echo: after the timeout");
  await client.close();
});

test("a 429 with Retry-After is retried (openai.max_retries) and the answer arrives", async () => {
  const { client } = await connectUser(retrying, "retrier");
  const before = model.requests.length;
  const answer = await ask(client, "RETRY r429 429 0");
  assert.equal(answer.message, "answered after 2 attempts");
  assert.equal(model.requests.length - before, 2, "the model saw the request twice");
  await client.close();
});

test("a 503 is retried after the Retry-After it names", async () => {
  const { client } = await connectUser(retrying, "retrier503");
  const answer = await ask(client, "RETRY r503 503 1");
  assert.equal(answer.message, "answered after 2 attempts");
  const [first = 0, second = 0] = attempts.get("r503") ?? [];
  assert.ok(second - first >= 900, `retried after ${second - first} ms`);
  await client.close();
});

test("a 401 is not retried", async () => {
  const { client } = await connectUser(retrying, "unauthorized");
  const before = model.requests.length;
  assert.match(String((await ask(client, "LEAK")).error), /401/);
  assert.equal(model.requests.length - before, 1);
  await client.close();
});

test("a stream that breaks mid-way ends the turn with an error; the history before it is intact", async () => {
  const { client } = await connectUser(main, "breaker", "?stream=1");
  client.send({ message: "remember the colour blue" });
  await client.nextMatching((frame) => frame.type === "answer");
  client.send({ message: "BREAK" });
  const deltas: Frame[] = [];
  const end = await client.nextMatching((frame) => {
    if (frame.type === "delta") deltas.push(frame);
    return frame.type === "answer" || frame.type === "error";
  });
  assert.equal(end.type, "error");
  assert.match(String(end.error), /^An error occurred: /);
  assert.ok(deltas.length >= 1, "part of the answer had streamed");
  client.send({ message: "what colour?" });
  const next = await client.nextMatching((frame) => frame.type === "answer");
  assert.equal(next.message, "echo: what colour?");
  const messages = model.requests.at(-1)?.messages ?? [];
  const contents = messages.map((message) => message.content);
  assert.ok(contents.includes("remember the colour blue"));
  assert.ok(contents.includes("echo: remember the colour blue"), "the earlier answer is still in the history");
  assert.deepEqual(
    messages.map((message) => message.role),
    ["system", "user", "assistant", "user", "user"],
  );
  await client.close();
  await stillServing();
});

// ---- 11. Secrets -------------------------------------------------------------------------------------

test("the API key never appears in a frame, a log line, /sessions* or a child's environment", async () => {
  process.env.OPENAI_API_KEY = API_KEY;
  let seed: TestClient | undefined;
  let live: TestClient | undefined;
  try {
    seed = (await connectUser(secret, "keyholder")).client;
    live = (await connectUser(secret, "keyholder", "?stream=1")).client;
    const leaked = await ask(seed, "LEAK");
    assert.match(String(leaked.error), /\[REDACTED\]/);
    assert.doesNotMatch(String(leaked.error), new RegExp(API_KEY));
    const env = await ask(seed, "CALL test_env {}");
    assert.match(String(env.message), /^RESULT \{/);
    const childEnv = JSON.parse(String(env.message).slice("RESULT ".length)) as Record<string, string>;
    assert.equal(childEnv.OPENAI_API_KEY, undefined);
    assert.ok(!Object.values(childEnv).some((value) => value.includes(API_KEY)));
    await live.nextMatching((frame) => frame.type === "answer");
    for (const pathname of ["/sessions", "/sessions/keyholder", "/health"]) {
      assert.ok(!(await (await fetch(`${secret.url}${pathname}`)).text()).includes(API_KEY), pathname);
    }
    for (const frame of [...seed.frames, ...live.frames]) assert.ok(!JSON.stringify(frame).includes(API_KEY), JSON.stringify(frame));
    await until(() => readLog(secret.logPath).some((line) => line.event === "turn_error"), "turn_error in the log");
    const turnError = readLog(secret.logPath).find((line) => line.event === "turn_error");
    assert.match(String(turnError?.error), /\[REDACTED\]/);
    assert.ok(!readFileSync(secret.logPath, "utf8").includes(API_KEY), "the log never has the key");
    // The model server, of course, was sent it.
    assert.equal(model.requests.at(-1)?.authorization, `Bearer ${API_KEY}`);
  } finally {
    delete process.env.OPENAI_API_KEY;
    await seed?.close();
    await live?.close();
  }
});

test("no server of this file ever wrote the API key to its log", async () => {
  // Every server here had the key, and several turns failed with it in the model's error text.
  await until(() => readLog(retrying.logPath).some((line) => line.event === "turn_error"), "the 401 turn_error of the retrying server");
  for (const server of [main, guarded, capped, limited, slow, timeouts, retrying, secret]) {
    const text = readFileSync(server.logPath, "utf8");
    assert.ok(text.length > 0);
    assert.ok(!text.includes(API_KEY), server.logPath);
  }
});
