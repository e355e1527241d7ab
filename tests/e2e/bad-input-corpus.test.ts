// The bad-input corpus: one data row per attack, all against ONE server. After every row: the
// server is up, a bystander with an ongoing conversation still gets its answers, and nothing of the
// bystander's is lost (same session_id, a history that only grows).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import { connect as netConnect, type AddressInfo, type Socket as NetSocket } from "node:net";
import path from "node:path";
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
  filesystemEntry,
  readLog,
  startServer,
  testServerEntry,
  TestClient,
  until,
  type Frame,
  type RunningServer,
} from "../helpers/harness.ts";
import { buildFrame, rawExchange, rawHandshake, rawRequest, upgradeHeaders, upgradeRequest } from "../helpers/raw-ws.ts";

const API_KEY = "sk-corpus-SECRET-5a4b3c2d1e0f";
const TOKEN = "corpus-token-31337";
const ADMIN = "corpus-admin-token-9001";
/** Credentials of a configured MCP server that cannot be reached. */
const MCP_QUERY_KEY = "corpus-mcp-query-key-77aa";
const MCP_HEADER_KEY = "corpus-mcp-header-key-88bb";
const MiB = 1024 * 1024;

// ---- the scripted model: the user's text says what it does ------------------------------------------

const gates = new Map<string, () => void>();
const gated = new Map<string, Promise<void>>();
function gate(key: string): Promise<void> {
  let promise = gated.get(key);
  if (!promise) {
    promise = new Promise<void>((resolve) => gates.set(key, resolve));
    gated.set(key, promise);
  }
  return promise;
}
const release = (key: string) => {
  void gate(key);
  gates.get(key)?.();
};

function longText(chars: number): string {
  const unit = "corpus long answer 0123456789\n";
  return unit.repeat(Math.ceil(chars / unit.length)).slice(0, chars);
}

async function respond(request: ChatRequest): Promise<ScriptedReply> {
  const directive = toolDirective(request);
  if (directive) return directive;
  const text = lastUserText(request);
  const [word = "", arg = ""] = text.split(" ");
  switch (word) {
    case "BLOCK":
      await gate(arg);
      return { content: `unblocked ${arg}` };
    case "HANG":
      return { hang: true };
    case "FAIL500":
      return { status: 500, errorMessage: "the model fell over" };
    case "BREAK":
      return { content: "a stream that will not finish ".repeat(10), chunkChars: 6, chunkDelayMs: 10, breakAfterChunks: 4 };
    case "LEAK":
      return { status: 401, errorMessage: `Incorrect API key provided: ${API_KEY}.` };
    case "LONG":
      return { content: longText(Number(arg)), chunkChars: 16384 };
    case "DUP":
      // Two tool calls under one model id, on a server whose echo needs approval.
      return {
        toolCalls: [
          { name: "approve_echo", arguments: { text: "one" }, id: "same" },
          { name: "approve_echo", arguments: { text: "two" }, id: "same" },
        ],
      };
    case "TRICKLE":
      return { endless: { mode: "tokens", everyMs: 20 } };
    case "KEEPALIVE":
      return { endless: { mode: "keepalive", everyMs: 20 } };
    case "BIGERROR":
      return { status: 500, errorMessage: "e".repeat(MiB) };
    case "FETCH": {
      const [, count = "1", url = ""] = text.split(" ");
      return { toolCalls: Array.from({ length: Number(count) }, (_, n) => ({ name: "fetch_fetch", arguments: { url: `${url}?n=${n}` } })) };
    }
    default:
      return { content: `echo: ${text}` };
  }
}

// ---- the server, the bystander --------------------------------------------------------------------

let model: ModelServer;
let running: RunningServer;
/** A web site on 127.0.0.1 for the fetch rows: a crafted robots.txt, small and large pages. */
let site: http.Server;
let siteUrl = "";
/** A robots.txt rule that a backtracking matcher takes exponential time over on a path of a's. */
const CRAFTED_ROBOTS_RULE = `/${"*a".repeat(40)}*b`;
let bystander: TestClient;
let bystanderSession = "";
let bystanderHistory = 0;
let workspace = "";
/** The queue-flood row's client, whose blocked turn its cleanup releases. */
let queued: TestClient | undefined;

interface Ctx {
  url: string;
  /** host:port of the server, for a correct Host header. */
  host: string;
  running: RunningServer;
  /** A ws:// URL for the user, with the token. */
  wsUrl(userId: string, query?: string): string;
  /** The path of /ws/<user_id> with the token, for raw requests. */
  wsPath(userId: string): string;
}

function ctx(): Ctx {
  return {
    url: running.url,
    host: new URL(running.url).host,
    running,
    wsUrl: (userId, query = "") => running.wsUrl(userId, `?token=${TOKEN}${query}`),
    wsPath: (userId) => `/ws/${userId}?token=${TOKEN}`,
  };
}

before(async () => {
  site = http.createServer((req, res) => {
    if (req.url === "/robots.txt")
      return res.writeHead(200, { "content-type": "text/plain" }).end(`User-agent: *\nDisallow: ${CRAFTED_ROBOTS_RULE}\n`);
    res.writeHead(200, { "content-type": "text/html", connection: "close" });
    if (req.url?.startsWith("/big"))
      return res.end(`<html><body><article>${"<p>Long <b>page</b> text.</p>".repeat(20_000)}</article></body></html>`);
    res.end("<html><body><article><h1>Small page</h1><p>Quick.</p></article></body></html>");
  });
  await new Promise<void>((resolve) => site.listen(0, "127.0.0.1", resolve));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  model = await startModelServer({ responder: respond });
  const base = baseConfig(
    model.baseUrl,
    {
      test: { ...testServerEntry, read_timeout_seconds: 2 },
      filesystem: filesystemEntry,
      approve: { ...testServerEntry, require_approval: ["echo"] },
      fetch: { builtin: "fetch", allow_hosts: ["127.0.0.1"], convert_workers: 1, max_convert_chars: 200_000 },
      // Port 9 (discard) refuses at once: a server that never connects, whose URL and headers hold keys.
      unreachable: {
        transport: "streamable_http",
        url: `http://127.0.0.1:9/mcp?api_key=${MCP_QUERY_KEY}`,
        headers: { "X-Api-Key": MCP_HEADER_KEY },
      },
    },
    {
      server: {
        auth_token: TOKEN,
        auth: { admin_token: ADMIN },
        // Long enough that a busy test process (server and clients share it) still answers pings in time.
        ping_interval_seconds: 1.5,
        headers_timeout_seconds: 0.5,
        request_timeout_seconds: 1,
      },
      limits: {
        max_message_chars: 2000,
        max_sockets_per_user: 2,
        max_queued_turns: 2,
        messages_per_minute: 3000,
        message_burst: 8,
        send_buffer_soft_bytes: 16 * 1024,
        send_buffer_hard_bytes: 256 * 1024,
        max_tool_result_chars: 2000,
        mcp_max_restarts: 1,
        // The bystander asks for its history after every row; a flood row goes past this.
        history_requests_per_minute: 3000,
        history_burst: 20,
        // The slow-reader row streams an 8 MiB answer.
        max_answer_chars: 16 * MiB,
        max_turn_output_chars: 32 * MiB,
        new_sessions_per_minute: 600,
        new_session_burst: 50,
      },
      session: { store: "memory" },
    },
  );
  running = await startServer({
    // request_timeout_seconds also bounds a whole streamed answer (the 8 MiB one of the slow-reader row).
    config: { ...base, openai: { ...base.openai, request_timeout_seconds: 4, stream_idle_timeout_seconds: 0.5, max_retries: 0 } },
    secrets: { openai: { api_key: API_KEY } },
  });
  // The filesystem rows' traps: a same-prefix sibling and symlinks out of the workspace.
  workspace = path.join(running.configDir, "workspace");
  mkdirSync(path.join(workspace, "fsuser"), { recursive: true });
  mkdirSync(path.join(workspace, "fsuser2"), { recursive: true });
  writeFileSync(path.join(workspace, "fsuser2", "secret.txt"), "fsuser2 private words");
  symlinkSync(running.configDir, path.join(workspace, "fsuser", "link"));

  bystander = await connect(ctx().wsUrl("bystander"));
  bystanderSession = String((await bystander.next()).session_id);
  for (const text of ["my name is Bea", "remember the number 42"]) assert.equal((await ask(bystander, text)).message, `echo: ${text}`);
  bystanderHistory = (await history()).length;
  assert.equal(bystanderHistory, 4);
});

after(async () => {
  for (const open of gates.values()) open();
  await bystander?.close();
  await running?.close();
  await model?.close();
  site?.closeAllConnections();
  await new Promise((resolve) => site?.close(resolve));
});

async function history(): Promise<Frame[]> {
  bystander.send({ type: "history", limit: 1000 });
  const frame = await bystander.next();
  assert.equal(frame.type, "history");
  assert.equal(frame.session_id, bystanderSession, "the bystander's session_id never changes");
  return frame.items as Frame[];
}

/** A bystander's echo turn takes milliseconds; a row that stalls the server makes it take longer. */
const BYSTANDER_MAX_MS = 2000;

/** The invariants every row must leave intact. */
async function bystanderUnharmed(row: string): Promise<void> {
  const health = await fetch(`${running.url}/health`);
  assert.equal(health.status, 200, "the server is up");
  const text = `still fine after: ${row}`;
  const started = Date.now();
  const answer = await ask(bystander, text);
  const elapsed = Date.now() - started;
  assert.ok(elapsed < BYSTANDER_MAX_MS, `the bystander's turn took ${elapsed} ms`);
  assert.deepEqual(answer, { message: `echo: ${text}`, user_id: "bystander", session_id: bystanderSession });
  const items = await history();
  assert.ok(items.length > bystanderHistory, `the history grows: ${items.length} after ${bystanderHistory}`);
  assert.equal(items[0]?.content, "my name is Bea", "nothing of the conversation is lost");
  assert.equal(items.at(-1)?.content, `echo: ${text}`);
  bystanderHistory = items.length;
}

// ---- attack helpers -----------------------------------------------------------------------------

type Observation = Record<string, unknown>;

/** An upgrade with the headers given: the HTTP status and the JSON error. */
async function upgrade(c: Ctx, pathname: string, extra: Record<string, string>, host = c.host): Promise<Observation> {
  const answer = await rawRequest(c.url, pathname, { headers: upgradeHeaders(host, extra) });
  return { status: answer.status, error: answer.json?.error, errorCode: answer.json?.code, body: answer.text };
}

async function httpGet(c: Ctx, pathname: string, headers: Record<string, string>): Promise<Observation> {
  const answer = await rawRequest(c.url, pathname, { headers: { host: c.host, ...headers } });
  return { status: answer.status, error: answer.json?.error, errorCode: answer.json?.code, body: answer.text };
}

/** A valid handshake by hand, then `bytes`: the close code the server answers with. */
async function rawFrames(c: Ctx, userId: string, bytes: Buffer): Promise<Observation> {
  const requests = model.requests.length;
  const raw = await rawHandshake(c.url, c.wsPath(userId));
  try {
    await raw.waitFor(() => raw.messages.length >= 1);
    raw.write(bytes);
    const close = await raw.closeFrame();
    await until(() => raw.socket.destroyed || raw.socket.readableEnded, "the server to end the connection");
    return { code: close.code, reason: close.reason, replies: raw.messages.length - 1, modelCalls: model.requests.length - requests };
  } finally {
    raw.destroy();
    await until(() => (c.running.server.sessions.get(userId)?.sockets.size ?? 0) === 0, "the server to let the socket go");
  }
}

/** One frame from a ws client; the frame the server answers with; the socket is still open after. */
async function oneFrame(c: Ctx, userId: string, send: (client: TestClient) => void): Promise<Observation> {
  const client = await connect(c.wsUrl(userId));
  try {
    await client.next();
    send(client);
    const reply = await client.next();
    const after = await ask(client, "and now a normal message");
    return { ...reply, openAfter: after.message === "echo: and now a normal message" };
  } finally {
    await client.close();
  }
}

/** A turn on a streaming socket, left to run: its last frame, and every frame it got, once it ends. */
function streamingTurn(c: Ctx, userId: string, text: string): { done: Promise<Frame>; frames: () => Promise<Frame[]> } {
  const opened = connect(c.wsUrl(userId, "&stream=1"));
  const done = (async () => {
    const client = await opened;
    try {
      await client.next();
      client.send({ message: text });
      return await client.nextMatching((frame) => frame.type === "answer" || frame.type === "error" || frame.type === "cancelled", 60_000);
    } finally {
      await client.close();
    }
  })();
  return {
    done,
    frames: async () => {
      await done;
      return (await opened).frames;
    },
  };
}
let pendingTurn: ReturnType<typeof streamingTurn> | undefined;

/** A chat message on a fresh socket of the user: the frame that answers it. */
async function chat(c: Ctx, userId: string, text: string): Promise<Observation> {
  const client = await connect(c.wsUrl(userId));
  try {
    await client.next();
    return await ask(client, text);
  } finally {
    await client.close();
  }
}

const call = (c: Ctx, userId: string, tool: string, args: unknown) => chat(c, userId, `CALL ${tool} ${JSON.stringify(args)}`);

/**
 * Sockets of the server's port that a process still holds (a descriptor): /proc/net/tcp lists
 * the server's side of each connection; an orphaned one (given back) has inode 0.
 */
function heldServerSockets(port: number): number {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  let held = 0;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = existsSync(table) ? readFileSync(table, "utf8") : "";
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // sl, local_address, rem_address, st, tx:rx, tr:when, retrnsmt, uid, timeout, inode
      const [, local = "", , state = "", , , , , , inode = "0"] = fields;
      if (local.endsWith(`:${hex}`) && state !== "0A" && inode !== "0") held++;
    }
  }
  return held;
}

/**
 * TCP connections that write `bytes` and then never close their side (allowHalfOpen). Opened 20
 * at a time: this process also runs the server and the bystander, whose heartbeat (0.3 s here)
 * must not starve behind hundreds of connects at once.
 */
async function openAndLeave(c: Ctx, payloads: string[], localAddress = "127.0.0.1"): Promise<NetSocket[]> {
  const opened: NetSocket[] = [];
  for (let at = 0; at < payloads.length; at += 20) opened.push(...(await openSome(c, payloads.slice(at, at + 20), localAddress)));
  return opened;
}

function openSome(c: Ctx, payloads: string[], localAddress: string): Promise<NetSocket[]> {
  const port = Number(new URL(c.url).port);
  return Promise.all(
    payloads.map(
      (bytes) =>
        new Promise<NetSocket>((resolve, reject) => {
          const socket = netConnect({ port, host: "127.0.0.1", localAddress, allowHalfOpen: true });
          socket.on("error", () => undefined);
          socket.once("connect", () => {
            if (bytes) socket.write(bytes);
            resolve(socket);
          });
          socket.once("error", reject);
        }),
    ),
  );
}

// ---- the corpus -----------------------------------------------------------------------------------

interface Row {
  name: string;
  attack: (c: Ctx) => Promise<Observation>;
  /** Each key must equal (or, for a RegExp, match) the observation's value. */
  expect?: Record<string, unknown>;
  /** Runs after the bystander's check (e.g. to release what the attack left blocked). */
  cleanup?: (c: Ctx) => Promise<void>;
}

const rows: Row[] = [
  // 1. Origin
  {
    name: "origin: a foreign site",
    attack: (c) => upgrade(c, c.wsPath("o1"), { origin: "http://evil.example" }),
    expect: { status: 403, error: /Origin/, errorCode: "forbidden" },
  },
  {
    name: "origin: null (a sandboxed frame)",
    attack: (c) => upgrade(c, c.wsPath("o2"), { origin: "null" }),
    expect: { status: 403, error: /Origin/, errorCode: "forbidden" },
  },
  {
    name: "origin: this host on another port",
    attack: (c) => upgrade(c, c.wsPath("o3"), { origin: "http://127.0.0.1:1" }),
    expect: { status: 403, error: /Origin/, errorCode: "forbidden" },
  },
  // 2. Host
  {
    name: "host: a rebinding name on /health",
    attack: (c) => httpGet(c, "/health", { host: "evil.example" }),
    expect: { status: 403, error: /Host/, errorCode: "forbidden" },
  },
  {
    name: "host: a rebinding name on an upgrade",
    attack: (c) => upgrade(c, c.wsPath("h2"), {}, `rebind.evil.example:${new URL(c.url).port}`),
    expect: { status: 403, error: /Host/, errorCode: "forbidden" },
  },
  {
    name: "host: a lookalike of localhost on /sessions",
    attack: (c) => httpGet(c, `/sessions?token=${TOKEN}`, { host: "localhost.evil.example" }),
    expect: { status: 403, error: /Host/, body: /^(?!.*bystander)/s },
  },
  // 3. Token
  {
    name: "token: none on /ws",
    attack: (c) => upgrade(c, "/ws/t1", {}),
    expect: { status: 401, error: /token/, errorCode: "unauthorized" },
  },
  {
    name: "token: a wrong bearer on /ws",
    attack: (c) => upgrade(c, "/ws/t2", { authorization: "Bearer guess" }),
    expect: { status: 401, errorCode: "unauthorized" },
  },
  {
    name: "token: a wrong one on /sessions/<user_id>",
    attack: (c) => httpGet(c, "/sessions/bystander?token=guess", {}),
    expect: { status: 401, body: /^(?!.*bystander)/s },
  },
  // 4. Frames
  {
    name: "frame: 2 MiB of text",
    attack: (c) => rawFrames(c, "mallory", buildFrame({ payload: JSON.stringify({ message: "x".repeat(2 * MiB) }) })),
    expect: { code: 1009, replies: 0, modelCalls: 0 },
  },
  {
    name: "frame: a message over limits.max_message_chars",
    attack: (c) => oneFrame(c, "mallory", (client) => client.send({ message: "y".repeat(2001) })),
    expect: { error: /limits\.max_message_chars/, code: "message_too_long", openAfter: true },
  },
  {
    name: "frame: invalid UTF-8",
    attack: (c) => rawFrames(c, "mallory", buildFrame({ payload: Buffer.from([0x7b, 0xc3, 0x28, 0x7d]) })),
    expect: { code: 1007, replies: 0, modelCalls: 0 },
  },
  {
    name: "frame: RSV1 without an extension",
    attack: (c) => rawFrames(c, "mallory", buildFrame({ rsv1: true, payload: '{"message":"hi"}' })),
    expect: { code: 1002, replies: 0, modelCalls: 0 },
  },
  {
    name: "frame: opcode 0x3",
    attack: (c) => rawFrames(c, "mallory", buildFrame({ opcode: 0x3, payload: '{"message":"hi"}' })),
    expect: { code: 1002, replies: 0, modelCalls: 0 },
  },
  {
    name: "frame: unmasked",
    attack: (c) => rawFrames(c, "mallory", buildFrame({ mask: false, payload: '{"message":"hi"}' })),
    expect: { code: 1002, replies: 0, modelCalls: 0 },
  },
  {
    name: "frame: a continuation without a start",
    attack: (c) => rawFrames(c, "mallory", buildFrame({ opcode: 0x0, payload: '{"message":"hi"}' })),
    expect: { code: 1002, replies: 0, modelCalls: 0 },
  },
  {
    name: "frame: a flood of fragments past maxPayload",
    attack: (c) => {
      const piece = Buffer.alloc(32 * 1024, 0x20);
      const frames = [buildFrame({ fin: false, payload: piece })];
      for (let total = piece.length; total <= 1.1 * MiB; total += piece.length)
        frames.push(buildFrame({ opcode: 0x0, fin: false, payload: piece }));
      return rawFrames(c, "mallory", Buffer.concat(frames));
    },
    expect: { code: 1009, replies: 0, modelCalls: 0 },
  },
  {
    name: "frame: a declared length of 2^40",
    attack: (c) => rawFrames(c, "mallory", buildFrame({ declaredLength: 2 ** 40 })),
    expect: { code: 1009, replies: 0, modelCalls: 0 },
  },
  {
    name: "frame: binary",
    attack: (c) => oneFrame(c, "mallory", (client) => client.ws.send(Buffer.from('{"message":"hi"}'))),
    expect: { error: /Binary frames are not supported/, code: "invalid_frame", openAfter: true },
  },
  {
    name: "frame: not JSON",
    attack: (c) => oneFrame(c, "mallory", (client) => client.send("{not json")),
    expect: { error: "Invalid JSON format", code: "invalid_frame", openAfter: true },
  },
  {
    name: "frame: a message that is not a string",
    attack: (c) => oneFrame(c, "mallory", (client) => client.send({ message: { $ne: null } })),
    expect: { error: /"message" must be a string/, code: "invalid_frame", openAfter: true },
  },
  {
    name: "path: a user id that climbs out (/ws/..)",
    attack: (c) => upgrade(c, `/ws/..?token=${TOKEN}`, {}),
    expect: { status: 400, error: /invalid user id/, errorCode: "invalid_user_id" },
  },
  {
    name: "path: a user id with broken percent-encoding",
    attack: (c) => upgrade(c, `/ws/%E0%A4%A?token=${TOKEN}`, {}),
    expect: { status: 400, error: /invalid user id/, errorCode: "invalid_user_id" },
  },
  // 5. Quotas
  {
    name: "quota: a third socket for one user",
    attack: async (c) => {
      const first = await connect(c.wsUrl("crowd"));
      const second = await connect(c.wsUrl("crowd"));
      try {
        // Both welcomed: both count.
        await Promise.all([first.next(), second.next()]);
        const third = new TestClient(c.wsUrl("crowd"));
        const closed = await third.closed;
        const still = await ask(second, "and I am still here");
        return { code: closed.code, reason: closed.reason, secondStill: still.message };
      } finally {
        await Promise.all([first.close(), second.close()]);
      }
    },
    expect: { code: 1013, reason: /^too_many_sockets: .*limits\.max_sockets_per_user/, secondStill: "echo: and I am still here" },
  },
  {
    name: "quota: a flood of queued turns",
    attack: async (c) => {
      const client = await connect(c.wsUrl("queuer"));
      await client.next();
      client.send({ message: "BLOCK corpus-queue" });
      await until(
        () => model.requests.some((request) => lastUserText(request) === "BLOCK corpus-queue"),
        "the blocked turn to reach the model",
      );
      for (const n of [1, 2, 3]) client.send({ message: `queued ${n}` });
      const refused = await client.next();
      queued = client;
      return refused;
    },
    expect: { error: /limits\.max_queued_turns/, code: "queue_full" },
    cleanup: async () => {
      release("corpus-queue");
      const answers = [await queued!.next(), await queued!.next(), await queued!.next()].map((frame) => frame.message);
      assert.deepEqual(answers, ["unblocked corpus-queue", "echo: queued 1", "echo: queued 2"]);
      await queued!.close();
    },
  },
  {
    name: "quota: a burst of messages past the rate limit",
    attack: async (c) => {
      const client = await connect(c.wsUrl("burster"));
      try {
        await client.next();
        for (let n = 0; n < 14; n++) client.send({ message: `burst ${n}` });
        // One frame per message: an answer, or why it was refused.
        const frames: Frame[] = [];
        while (frames.length < 14) frames.push(await client.next());
        const refused = frames.find((frame) => frame.code === "rate_limited");
        return { error: refused?.error, answered: frames.some((frame) => frame.message === "echo: burst 0") };
      } finally {
        await client.close();
      }
    },
    expect: { error: /limits\.messages_per_minute\)\. Retry in \d+ s/, answered: true },
  },
  // 6. Dead and slow peers
  {
    name: "peer: a client that never answers pings",
    attack: async (c) => {
      const deaf = new TestClient(c.wsUrl("deaf"), { autoPong: false });
      await deaf.opened();
      return deaf.closed;
    },
    expect: { code: 1006 },
  },
  {
    name: "peer: a reader that stops reading during a long streamed answer",
    attack: async (c) => {
      const size = 8 * MiB;
      const client = await connect(c.wsUrl("stalled", "&stream=1"));
      await client.next();
      (client.ws as unknown as { _socket: NetSocket })._socket.pause();
      // Unasked pongs keep the heartbeat away: only the send buffer may end this socket.
      const pongs = setInterval(() => client.ws.pong(), 50);
      try {
        client.send({ message: `LONG ${size}` });
        await until(
          () => readLog(c.running.logPath).some((line) => line.event === "slow_socket_dropped" && line.user_id === "stalled"),
          "the drop",
          20000,
        );
        const session = c.running.server.sessions.get("stalled");
        await until(() => session?.sockets.size === 0 && !session.busy, "the turn to finish without the socket", 20000);
        const last = session?.historyItems().at(-1);
        return { dropped: true, kept: last?.role === "assistant" && last.content === longText(size) };
      } finally {
        clearInterval(pongs);
        client.ws.terminate();
      }
    },
    expect: { dropped: true, kept: true },
  },
  // 7. HTTP
  {
    name: "http: slowloris headers",
    attack: async (c) => {
      const answer = await rawExchange(c.url, `GET /health HTTP/1.1\r\nHost: ${c.host}\r\nX-a: `, 5000);
      return { closed: true, fast: answer.closedAfterMs < 5000 };
    },
    expect: { closed: true, fast: true },
  },
  {
    name: "http: an upgrade without Sec-WebSocket-Key",
    attack: async (c) => {
      const headers = upgradeHeaders(c.host);
      delete headers["sec-websocket-key"];
      return { ...(await rawExchange(c.url, upgradeRequest("GET", c.wsPath("u1"), headers))) };
    },
    expect: { status: 400, json: { error: "missing or invalid Sec-WebSocket-Key header", code: "invalid_request" } },
  },
  {
    name: "http: an upgrade with Sec-WebSocket-Version 8",
    attack: async (c) => ({
      ...(await rawExchange(c.url, upgradeRequest("GET", c.wsPath("u2"), upgradeHeaders(c.host, { "sec-websocket-version": "8" })))),
    }),
    expect: { status: 400, text: /Sec-WebSocket-Version/ },
  },
  {
    name: "http: a POST with Upgrade headers",
    attack: async (c) => ({
      ...(await rawExchange(c.url, upgradeRequest("POST", c.wsPath("u3"), upgradeHeaders(c.host, { "content-length": "0" })))),
    }),
    expect: { status: 400, text: /must be a GET/ },
  },
  {
    name: "http: bytes that are not HTTP",
    attack: async (c) => ({ ...(await rawExchange(c.url, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]))) }),
    expect: { status: 400 },
  },
  // 8. MCP
  {
    name: "mcp: a child that crashes mid-call",
    attack: (c) => call(c, "crasher", "test_crash", {}),
    expect: { message: /^RESULT Error: .*closed/i },
  },
  {
    name: "mcp: a tool that runs past read_timeout_seconds",
    attack: (c) => call(c, "tooler", "test_slow", { ms: 30000 }),
    expect: { message: /^RESULT Error: .*timed out/i },
  },
  {
    name: "mcp: a tool result past limits.max_tool_result_chars",
    attack: (c) => call(c, "tooler", "test_big", { chars: 100_000 }),
    expect: { message: /^RESULT x{2000}\n\n\[result cut: 100000 characters, only the first 2000 are shown\]$/ },
  },
  // 9. The model
  {
    name: "model: it never answers",
    attack: (c) => chat(c, "modeluser", "HANG"),
    expect: { error: /^An error occurred: .*timed out/i, code: "turn_failed" },
  },
  {
    name: "model: it answers 500",
    attack: (c) => chat(c, "modeluser", "FAIL500"),
    expect: { error: /^An error occurred: .*500/, code: "turn_failed" },
  },
  {
    name: "model: its stream breaks mid-way",
    attack: (c) => chat(c, "modeluser", "BREAK"),
    expect: { error: /^An error occurred: /, code: "turn_failed" },
  },
  // 10. The filesystem
  {
    name: "fs: a same-prefix sibling (fsuser → fsuser2)",
    attack: async (c) =>
      call(c, "fsuser", "filesystem_read_text_file", { path: path.join(workspace, "fsuser", "..", "fsuser2", "secret.txt") }),
    expect: { message: /^RESULT Error: (?!.*fsuser2 private)/s },
  },
  {
    name: "fs: a symlink out to the secrets file",
    attack: async (c) =>
      call(c, "fsuser", "filesystem_read_text_file", { path: path.join(workspace, "fsuser", "link", "mcp_agent.secrets.yaml") }),
    expect: { message: new RegExp(`^RESULT Error: (?!.*${API_KEY})`, "s") },
  },
  // 11. Secrets
  {
    name: "secrets: a model error that quotes the API key",
    attack: async (c) => {
      const reply = await chat(c, "leaker", "LEAK");
      await until(
        () => readLog(c.running.logPath).some((line) => line.event === "turn_error" && line.user_id === "leaker"),
        "the error in the log",
      );
      return { ...reply, logHasKey: readFileSync(c.running.logPath, "utf8").includes(API_KEY) };
    },
    expect: { error: new RegExp(`^(?!.*${API_KEY}).*\\[REDACTED\\]`), logHasKey: false },
  },
  // 12. No user-controlled work on the main thread beyond a bound
  {
    name: "main thread: a crafted robots.txt rule against a long path",
    attack: async (c) => {
      const fetcher = streamingTurn(c, "robotsuser", `FETCH 1 ${siteUrl}/${"a".repeat(1800)}`);
      return { ...(await fetcher.done), toolOk: (await fetcher.frames()).some((frame) => frame.type === "tool_end" && frame.ok === true) };
    },
    expect: { type: "answer", toolOk: true },
  },
  {
    name: "main thread: one user converting many large pages while the bystander chats",
    // Left running: the bystander's check happens while the pages are converted.
    attack: (c) => {
      pendingTurn = streamingTurn(c, "pagehog", `FETCH 3 ${siteUrl}/big`);
      return Promise.resolve({});
    },
    cleanup: async () => {
      const end = await pendingTurn?.done;
      assert.equal(end?.type, "answer");
    },
  },
  {
    name: "history: asked for in a loop",
    attack: async (c) => {
      const client = await connect(c.wsUrl("historyloop", "&stream=1"));
      try {
        await client.next();
        for (let n = 0; n < 200; n++) client.send({ type: "history" });
        const refusal = await client.nextMatching((frame) => frame.type === "error");
        return { error: refusal.error, code: refusal.code };
      } finally {
        await client.close();
      }
    },
    expect: { error: /^Too many history requests: .*\(limits\.history_requests_per_minute\)/, code: "rate_limited" },
  },
  {
    name: "history: a before and a limit that make no sense",
    attack: (c) => oneFrame(c, "historybad", (client) => client.send({ type: "history", before: -5, limit: 1e12 })),
    expect: { error: /"before" must be an item index/, code: "invalid_frame", openAfter: true },
  },
  // 13. Everything ends
  {
    name: "model: two tool calls under one id, with approvals on, then a cancel",
    attack: async (c) => {
      const client = await connect(c.wsUrl("dupids", "&stream=1"));
      try {
        await client.next();
        client.send({ message: "DUP" });
        const first = await client.nextMatching((frame) => frame.type === "approval_request");
        const second = await client.nextMatching((frame) => frame.type === "approval_request");
        client.send({ type: "cancel" });
        const end = await client.nextMatching((frame) => frame.type === "cancelled" || frame.type === "answer" || frame.type === "error");
        const resolved = client.frames.filter((frame) => frame.type === "approval_resolved").length;
        client.send({ message: "after" });
        const after = await client.nextMatching((frame) => frame.type === "answer");
        return { distinct: first.call_id !== second.call_id, resolved, end: end.type, after: after.message };
      } finally {
        await client.close();
      }
    },
    expect: { distinct: true, resolved: 2, end: "cancelled", after: "echo: after" },
  },
  {
    name: "model: it trickles tokens forever",
    attack: (c) => chat(c, "trickler", "TRICKLE"),
    expect: { error: /^An error occurred: .*timed out.*openai\.request_timeout_seconds/ },
  },
  {
    name: "model: it sends only keep-alive comments",
    attack: (c) => chat(c, "keepaliver", "KEEPALIVE"),
    expect: { error: /^An error occurred: .*timed out/ },
  },
  // 14. Promises kept
  {
    name: "model: a 1 MiB error body",
    attack: (c) => chat(c, "bigerror", "BIGERROR"),
    expect: { error: /^An error occurred: .{0,2200}\(limits\.max_error_chars\)\]$/s },
  },
  {
    name: "reset: a workspace that cannot be emptied",
    attack: async (c) => {
      const client = await connect(c.wsUrl("halfreset", "&stream=1"));
      try {
        await client.next();
        // Replaced by a file after the session made it: it cannot be listed, let alone emptied.
        const folder = path.join(workspace, "halfreset");
        rmSync(folder, { recursive: true, force: true });
        writeFileSync(folder, "not a folder");
        client.send({ type: "reset", workspace: true });
        const reset = await client.nextMatching((frame) => frame.type === "reset");
        const error = await client.nextMatching((frame) => frame.type === "error");
        rmSync(folder, { force: true });
        return { cleared: reset.workspace_cleared, error: error.error, code: error.code };
      } finally {
        await client.close();
      }
    },
    expect: {
      cleared: false,
      code: "reset_incomplete",
      error: /^New chat started \(the conversation was cleared\), but the workspace files could not all be deleted \(ENOTDIR on \.\)$/,
    },
  },
  // 15. Identities
  {
    name: "identity: a JWT with alg none as the token",
    attack: (c) => {
      const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
      return upgrade(c, `/ws/bystander?token=${part({ alg: "none", typ: "JWT" })}.${part({ sub: "bystander" })}.`, {});
    },
    expect: { status: 401, body: /^(?!.*bystander")/s },
  },
  {
    name: "identity: Basic credentials naming the bystander with a guessed token",
    attack: (c) => httpGet(c, "/sessions/bystander", { authorization: `Basic ${Buffer.from("bystander:guess").toString("base64")}` }),
    expect: { status: 401, body: /^(?!.*session_id)/s },
  },
  {
    name: "identity: the admin token sees every session, a wrong admin token none",
    attack: async (c) => {
      const admin = await httpGet(c, "/sessions", { authorization: `Bearer ${ADMIN}` });
      const wrong = await httpGet(c, "/sessions", { authorization: `Bearer ${ADMIN}x` });
      return { adminStatus: admin.status, adminSeesBystander: String(admin.body).includes('"bystander"'), wrongStatus: wrong.status };
    },
    expect: { adminStatus: 200, adminSeesBystander: true, wrongStatus: 401 },
  },
  // 16. Secrets: configured credentials never leave
  {
    name: "secrets: an unreachable MCP server's URL key and header key stay out of /sessions/<id>, the frames and the log",
    attack: async (c) => {
      const reply = await chat(c, "keyholder", "hello keys");
      const info = await httpGet(c, `/sessions/keyholder?token=${TOKEN}`, {});
      await until(
        () => readLog(c.running.logPath).some((line) => line.event === "mcp_server_failed" && line.user_id === "keyholder"),
        "the failure in the log",
      );
      const log = readFileSync(c.running.logPath, "utf8");
      const everything = JSON.stringify(reply) + String(info.body) + log;
      return {
        status: info.status,
        failedShown: /"unreachable".*"state":"failed"/.test(String(info.body)),
        leaked: [MCP_QUERY_KEY, MCP_HEADER_KEY].some((key) => everything.includes(key)),
        pathShown: String(info.body).includes(c.running.configDir),
      };
    },
    expect: { status: 200, failedShown: true, leaked: false, pathShown: false },
  },
  // 17. Sockets given back
  {
    name: "sockets: 100 refused upgrades and 100 unfinished headers, never closed by the client, are given back",
    attack: async (c) => {
      const port = Number(new URL(c.url).port);
      const baseline = heldServerSockets(port);
      const refused = Array.from({ length: 100 }, (_, n) => `${upgradeRequest("GET", `/ws/leak${n}`, upgradeHeaders(c.host))}`);
      const slow = Array.from({ length: 100 }, (_, n) => `GET /health HTTP/1.1\r\nHost: ${c.host}\r\nX-slow-${n}: `);
      const sockets = await openAndLeave(c, [...refused, ...slow]);
      try {
        const peak = heldServerSockets(port);
        await until(
          () => heldServerSockets(port) <= baseline,
          `the server to give the sockets back (${heldServerSockets(port)} > ${baseline})`,
          10000,
        );
        return { opened: peak > baseline, givenBack: true };
      } finally {
        for (const socket of sockets) socket.destroy();
      }
    },
    expect: { opened: true, givenBack: true },
  },
  // 18. Admission
  {
    name: "admission: 300 made-up user ids from one address",
    attack: async (c) => {
      // In batches, for the bystander's heartbeat (see openAndLeave).
      const outcomes: string[] = [];
      for (let batch = 0; batch < 15; batch++) {
        const results = await Promise.all(
          Array.from({ length: 20 }, async (_, n) => {
            const client = new TestClient(c.wsUrl(`made-up-${batch * 20 + n}`), { localAddress: "127.0.0.9" });
            const closed = client.closed.then((value) => `closed ${value.code} ${value.reason}`);
            const welcomed = new Promise<string>((resolve) => client.ws.once("message", () => resolve("welcomed")));
            const first = await Promise.race([closed, welcomed]);
            client.ws.terminate();
            return first;
          }),
        );
        outcomes.push(...results);
      }
      // The bystander opens a second tab meanwhile: it is a returning user, never held back.
      const tab = await connect(c.wsUrl("bystander"));
      const welcome = await tab.next();
      await tab.close();
      return {
        refused: outcomes.filter((outcome) => /1013 .*limits\.new_session_burst/.test(outcome)).length >= 150,
        bystanderWelcome: welcome.session_id === bystanderSession,
        folders: readdirSync(workspace).filter((name) => name.startsWith("made-up-")).length,
      };
    },
    expect: { refused: true, bystanderWelcome: true, folders: 0 },
  },
];
function check(observed: Observation, expected: Record<string, unknown>): void {
  for (const [key, want] of Object.entries(expected)) {
    const got = observed[key];
    if (want instanceof RegExp) assert.match(String(got), want, `${key}: ${String(got).slice(0, 300)}`);
    else assert.deepEqual(got, want, `${key}: ${JSON.stringify(got)?.slice(0, 300)}`);
  }
}

test("the corpus has at least 30 rows, each with a unique name", () => {
  assert.ok(rows.length >= 30, `${rows.length} rows`);
  assert.equal(new Set(rows.map((row) => row.name)).size, rows.length);
});

for (const row of rows) {
  test(row.name, async () => {
    const observed = await row.attack(ctx());
    if (row.expect) check(observed, row.expect);
    await bystanderUnharmed(row.name);
    await row.cleanup?.(ctx());
  });
}

test("after the whole corpus, the bystander's conversation is all there", async () => {
  const items = await history();
  assert.equal(items.length, 4 + 2 * rows.length);
  assert.deepEqual(
    items.slice(0, 4).map((item) => item.content),
    ["my name is Bea", "echo: my name is Bea", "remember the number 42", "echo: remember the number 42"],
  );
  assert.ok(!readFileSync(running.logPath, "utf8").includes(API_KEY));
});
