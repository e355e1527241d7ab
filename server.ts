// The server: node:http for the routes and the page, a `ws` server for /ws/<user_id>.
// createAgentServer() does nothing until listen(); tests make as many as they like.
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import http, { type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Duplex } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import OpenAI from "openai";
import { WebSocketServer, type WebSocket, type RawData } from "ws";
import type { AgentSettings } from "./agent.ts";
import { CONFIG_FILE, ConfigError, loadConfig, resolveConfigPath, SECRETS_FILE, type Config, type LogLevel } from "./config.ts";
import { loggerFromConfig, redact, type Logger } from "./log.ts";
import {
  builtinFetchConnection,
  builtinFilesystemConnection,
  commandExists,
  connectionFor,
  McpHub,
  type ConnectionLimits,
  usesBuiltinFetch,
  type HubContext,
  type McpConnection,
} from "./mcp.ts";
import {
  BINARY_FRAME_ERROR,
  errorFrame,
  isValidUserId,
  parseClientFrame,
  USER_ID_RULE,
  welcomeFrame,
} from "./protocol.ts";
import { requiresApproval } from "./approvals.ts";
import { checkHost, checkOrigin, checkToken, checkUpgradeRequest, isLoopbackBind } from "./guard.ts";
import { SocketPeer } from "./peer.ts";
import { handleRequest, rejectUpgrade, sendJson } from "./routes.ts";
import { SessionManager, type UserSession } from "./session.ts";
import { SqliteStore } from "./sqlite-store.ts";
import { MemoryStore, type SessionStore } from "./store.ts";
import { ClusterCoordinator } from "./cluster.ts";
import { RedisStore } from "./redis-store.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** Close code for "going away": the server is shutting down. */
const CLOSE_GOING_AWAY = 1001;
/** Close code for "internal error": the session could not be opened (e.g. the store failed). */
const CLOSE_INTERNAL_ERROR = 1011;
/** Close code for "try again later": a quota is full. */
const CLOSE_TRY_AGAIN_LATER = 1013;

export interface AgentServerOptions {
  config: Config;
  log: Logger;
  host?: string;
  port?: number;
}

export interface AgentServer {
  listen(): Promise<{ url: string; port: number; host: string }>;
  close(): Promise<void>;
  readonly sessions: SessionManager;
}

export function createAgentServer(options: AgentServerOptions): AgentServer {
  const { config, log } = options;
  const host = options.host ?? "127.0.0.1";
  const secrets = config.secretValues;
  const redactText = (text: string) => redact(text, secrets);

  const openai = config.openai.api_key
    ? new OpenAI({
        apiKey: config.openai.api_key,
        baseURL: config.openai.base_url,
        timeout: config.openai.request_timeout_seconds * 1000,
        maxRetries: config.openai.max_retries,
      })
    : undefined;
  const agent: AgentSettings = {
    openai,
    model: config.openai.default_model,
    instruction: config.agent.instruction,
    maxIterations: config.agent.max_iterations,
    log,
  };

  const workspaceRoot = resolveConfigPath(config, config.workspace.root);
  // The store is opened here, before anything else can fail, and closed last in close().
  const cluster =
    config.session.store === "redis" ? new ClusterCoordinator({ url: config.redis.url, log, leaseMs: config.redis.lease_seconds * 1000 }) : undefined;
  const store: SessionStore = cluster
    ? new RedisStore(cluster.redis)
    : config.session.store === "sqlite"
      ? new SqliteStore(resolveConfigPath(config, config.session.sqlite_path))
      : new MemoryStore();
  const connectionLimits: ConnectionLimits = {
    maxToolResultChars: config.limits.max_tool_result_chars,
    maxRestarts: config.limits.mcp_max_restarts,
  };
  const shared = new Map<string, McpConnection>();
  // The server's own files: never served by the built-in filesystem, wherever the workspaces are
  // (a folder that holds the workspaces, e.g. logs written beside the config, is not one of them).
  const sqlitePath = resolveConfigPath(config, config.session.sqlite_path);
  const ownFiles = [
    ...[CONFIG_FILE, SECRETS_FILE].map((file) => path.join(config.configDir, file)),
    ...["", "-wal", "-shm", "-journal"].map((suffix) => sqlitePath + suffix),
    path.dirname(resolveConfigPath(config, config.logger.path ?? config.logger.path_settings.path_pattern)),
  ].filter((file) => workspaceRoot !== file && !workspaceRoot.startsWith(file + path.sep));
  for (const [name, entry] of Object.entries(config.mcp.servers)) {
    if (entry.builtin === "filesystem") {
      shared.set(name, builtinFilesystemConnection(name, entry, ownFiles, log, connectionLimits));
      continue;
    }
    const builtin = usesBuiltinFetch(entry, () => commandExists("uvx"));
    if (!builtin) continue;
    if (builtin === "fallback") {
      log.warn("fetch_fallback", {
        server: name,
        message: `"uvx" is not installed, so mcp.servers.${name} (uvx mcp-server-fetch) uses the built-in fetch tool instead. Set "builtin: fetch" to silence this, or install uv to run the Python server`,
      });
    }
    shared.set(name, builtinFetchConnection(name, entry, log, connectionLimits));
  }
  const hubContext: HubContext = {
    log,
    limits: connectionLimits,
    packageDirs: [config.configDir, HERE],
    shared,
  };
  const createHub = (userId: string, sessionId: string) => {
    // Not created here: the built-in filesystem makes it on the first write, a child server just before it starts.
    const workspaceDir = path.join(workspaceRoot, userId);
    const fields = { user_id: userId, session_id: sessionId };
    const connections = Object.entries(config.mcp.servers).map(
      ([name, entry]) => shared.get(name) ?? connectionFor(name, entry, workspaceDir, hubContext, fields),
    );
    return new McpHub(connections, { workspaceDir });
  };
  const sessions = new SessionManager({
    deps: {
      agent,
      log,
      maxHistoryMessages: config.session.max_history_messages,
      maxQueuedTurns: config.limits.max_queued_turns,
      rateLimit: { perMinute: config.limits.messages_per_minute, burst: config.limits.message_burst },
      redact: redactText,
      store,
      needsApproval: (server, tool) => {
        const entry = config.mcp.servers[server];
        return entry !== undefined && requiresApproval(entry.require_approval, tool);
      },
      approvalTimeoutMs: config.agent.approval_timeout_seconds * 1000,
      ...(cluster ? { cluster } : {}),
    },
    createHub,
    idleMs: config.session.idle_timeout_seconds * 1000,
    sweepIntervalMs: config.session.sweep_interval_seconds * 1000,
    retentionMs: config.session.retention_days * 24 * 60 * 60 * 1000,
    mcpIdleMs: config.session.mcp_idle_seconds * 1000,
    maxWarmSessions: config.limits.max_warm_sessions,
  });

  let indexCache: Buffer | undefined;
  const indexHtml = () => (indexCache ??= readFileSync(path.join(HERE, "index.html")));
  const { limits } = config;
  const authToken = config.server.auth_token;

  const headersTimeoutMs = config.server.headers_timeout_seconds * 1000;
  const requestTimeoutMs = config.server.request_timeout_seconds * 1000;
  // Node checks those timeouts only every connectionsCheckingInterval (30 s by default), which
  // would let a slowloris client stay that much longer than headers_timeout_seconds.
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, headersTimeoutMs / 2, requestTimeoutMs / 2));
  const httpServer = http.createServer({ connectionsCheckingInterval }, (req, res) => {
    const pathname = rawPathname(req.url);
    const refusal =
      checkHost(req.headers.host, host, config.server.allowed_hosts) ??
      (pathname === "/sessions" || pathname.startsWith("/sessions/") ? checkToken(req.headers, req.url, authToken) : undefined);
    if (refusal) return sendJson(res, refusal.status, { error: refusal.error }, refusal.status === 401 ? { "www-authenticate": "Bearer" } : {});
    handleRequest(req, res, { sessions, indexHtml, ...(cluster ? { cluster: { instance: cluster.instanceId, healthy: () => cluster.healthy(), liveUsers: () => cluster.liveUsers() } } : {}) });
  });
  // A slowloris client that never finishes its headers or body is cut off.
  httpServer.headersTimeout = headersTimeoutMs;
  httpServer.requestTimeout = requestTimeoutMs;
  httpServer.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: limits.max_payload_bytes, perMessageDeflate: false });
  const peers = new Set<SocketPeer>();
  let nextPeerId = 1;

  httpServer.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    const refuse = (refusal: { status: number; error: string }) => {
      log.warn("upgrade_refused", { status: refusal.status, error: refusal.error, path: rawPathname(req.url) });
      rejectUpgrade(socket, refusal.status, { error: refusal.error });
    };
    const early = checkUpgradeRequest(req.method, req.headers) ?? checkHost(req.headers.host, host, config.server.allowed_hosts);
    if (early) return refuse(early);
    // The raw path, not a URL-normalised one: `/ws/..` must reach the user id check, not become `/`.
    const pathname = rawPathname(req.url);
    const found = /^\/ws\/([^/]*)$/.exec(pathname);
    if (!found) return refuse({ status: 404, error: `not found: ${pathname}; connect to /ws/<user_id>` });
    let userId: string;
    try {
      userId = decodeURIComponent(found[1] ?? "");
    } catch {
      return refuse({ status: 400, error: `invalid user id: ${USER_ID_RULE}` });
    }
    if (!isValidUserId(userId)) return refuse({ status: 400, error: `invalid user id: ${USER_ID_RULE}` });
    const late = checkOrigin(req.headers.origin, req.headers.host, config.server.allowed_origins) ?? checkToken(req.headers, req.url, authToken);
    if (late) return refuse(late);
    const streaming = wantsStreaming(req.url);
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, userId, streaming));
  });

  /** Quotas are told over the socket (close 1013 "try again later" with a reason), not as HTTP. */
  /** Open sockets per user, counted from the upgrade on (a session may still be loading). */
  const socketsPerUser = new Map<string, number>();

  function quotaRefusal(userId: string): string | undefined {
    if (!sessions.has(userId) && sessions.size >= limits.max_sessions) {
      return `server full: ${sessions.size} sessions (limits.max_sessions)`;
    }
    const open = socketsPerUser.get(userId) ?? 0;
    if (open >= limits.max_sockets_per_user) {
      return `too many sockets for this user: ${open} open (limits.max_sockets_per_user)`;
    }
    return undefined;
  }

  function onConnection(ws: WebSocket, userId: string, streaming: boolean): void {
    // Malformed frames (bad UTF-8, oversize, reserved bits) end up here: ws closes that socket with
    // the right code; the process must never see them as an uncaught error.
    ws.on("error", (error) => log.warn("socket_error", { user_id: userId, error: error.message }));
    const refusal = quotaRefusal(userId);
    if (refusal) {
      log.warn("connect_refused", { user_id: userId, reason: refusal });
      ws.close(CLOSE_TRY_AGAIN_LATER, refusal);
      return;
    }
    socketsPerUser.set(userId, (socketsPerUser.get(userId) ?? 0) + 1);
    const id = nextPeerId++;
    const fields = { user_id: userId, socket: id, streaming };
    const peer = new SocketPeer({
      id,
      ws,
      streaming,
      limits: { softBytes: limits.send_buffer_soft_bytes, hardBytes: limits.send_buffer_hard_bytes },
      onDrop: (bufferedBytes) => log.warn("slow_socket_dropped", { ...fields, buffered_bytes: bufferedBytes }),
    });
    peers.add(peer);
    // Frames that arrive while the session loads wait for it, in arrival order.
    const ready = sessions.open(userId).then(
      (session) => {
        if (ws.readyState !== ws.OPEN) return session;
        const welcome = welcomeFrame(userId, session.sessionId);
        peer.send(streaming ? { type: "welcome", ...welcome, stream: true } : welcome);
        session.attach(peer);
        log.info("connect", { ...fields, session_id: session.sessionId, open_sockets: session.peers.size });
        return session;
      },
      (error: unknown) => {
        const reason = redactText((error as Error).message);
        log.error("session_open_failed", { ...fields, error: reason });
        peer.send(errorFrame(`Session error: ${reason}`));
        ws.close(CLOSE_INTERNAL_ERROR, "session error");
        return undefined;
      },
    );
    ws.on("message", (data: RawData, isBinary: boolean) => {
      void ready.then((session) => session && onFrame(session, peer, data, isBinary));
    });
    ws.on("close", (code) => {
      peers.delete(peer);
      const left = (socketsPerUser.get(userId) ?? 1) - 1;
      if (left > 0) socketsPerUser.set(userId, left);
      else socketsPerUser.delete(userId);
      void ready.then((session) => {
        session?.detach(peer);
        log.info("disconnect", { ...fields, code, open_sockets: session?.peers.size ?? 0 });
      });
    });
  }

  function onFrame(session: UserSession, peer: SocketPeer, data: RawData, isBinary: boolean): void {
    if (isBinary) return peer.send(errorFrame(BINARY_FRAME_ERROR));
    const parsed = parseClientFrame(rawText(data));
    if (!parsed.ok) return peer.send(errorFrame(parsed.error));
    const frame = parsed.frame;
    switch (frame.type) {
      case "ignored":
        return;
      case "chat": {
        // A refused message: a streaming client learns which one from its client_id.
        const refuse = (error: string) => {
          log.warn("message_refused", { user_id: session.userId, socket: peer.id, reason: error });
          peer.send(peer.streaming ? { type: "error", error, ...(frame.clientId !== undefined ? { client_id: frame.clientId } : {}) } : errorFrame(error));
        };
        if (frame.message.length > limits.max_message_chars) {
          return refuse(`Message too long: ${frame.message.length} characters, the limit is ${limits.max_message_chars} (limits.max_message_chars)`);
        }
        const submitted = session.submit(peer, frame.message, frame.clientId);
        if (!submitted.ok) refuse(submitted.error);
        return;
      }
      case "cancel":
        session.cancel();
        return;
      case "history":
        // In a cluster, turns that ran on other instances are read from the store first.
        void session
          .refresh()
          .catch((error: unknown) => log.warn("history_refresh_failed", { user_id: session.userId, error }))
          .then(() => peer.send({ type: "history", user_id: session.userId, session_id: session.sessionId, items: session.historyItems() }));
        return;
      case "reset":
        void resetSession(session, peer, frame.workspace);
        return;
      case "approval":
        if (!peer.streaming) return peer.send(errorFrame("approvals are answered from a streaming socket (/ws/<user_id>?stream=1)"));
        if (!session.answerApproval(frame.call_id, frame.approved, frame.reason, frame.always, peer.id)) {
          peer.send({
            type: "error",
            error: `no approval is waiting for call ${frame.call_id} (it was already answered, timed out or cancelled)`,
            call_id: frame.call_id,
          });
        }
        return;
      default:
        return frame satisfies never;
    }
  }

  async function resetSession(session: UserSession, asker: SocketPeer, clearWorkspace: boolean): Promise<void> {
    try {
      await session.reset();
      if (clearWorkspace) {
        const dir = path.join(workspaceRoot, session.userId);
        const names = existsSync(dir) ? readdirSync(dir) : [];
        for (const name of names) rmSync(path.join(dir, name), { recursive: true, force: true });
      }
    } catch (error) {
      return asker.send(errorFrame(`Reset failed: ${redactText((error as Error).message)}`));
    }
    const frame = { type: "reset" as const, user_id: session.userId, session_id: session.sessionId, workspace_cleared: clearWorkspace };
    for (const peer of session.peers) if (peer.streaming) peer.send(frame);
    // A seed-style socket that asked learns its new session_id from a fresh welcome.
    if (!asker.streaming) asker.send(welcomeFrame(session.userId, session.sessionId));
  }

  // Heartbeat: a peer that did not answer the last ping within an interval is gone (laptop lid
  // closed, network dropped) and is terminated so its session can be swept.
  const heartbeat = setInterval(() => {
    for (const peer of peers) if (!peer.heartbeat()) log.info("socket_timeout", { socket: peer.id });
  }, config.server.ping_interval_seconds * 1000);
  heartbeat.unref();

  let closing: Promise<void> | undefined;
  return {
    sessions,
    listen: async () => {
      // Start with Redis ready when it is there; without it, start anyway (unhealthy) and recover.
      await cluster?.connected().catch((error: unknown) => log.warn("redis_unreachable_at_start", { error }));
      return new Promise((resolve, reject) => {
        httpServer.once("error", reject);
        httpServer.listen(options.port ?? 8000, host, () => {
          httpServer.off("error", reject);
          const { port } = httpServer.address() as AddressInfo;
          sessions.startSweeper();
          for (const connection of shared.values()) void connection.start();
          const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
          log.info("server_start", { url, ...(cluster ? { instance: cluster.instanceId } : {}), model: config.openai.default_model, servers: Object.keys(config.mcp.servers) });
          resolve({ url, port, host });
        });
      });
    },
    close: () =>
      (closing ??= (async () => {
        clearInterval(heartbeat);
        httpServer.close();
        for (const ws of wss.clients) ws.close(CLOSE_GOING_AWAY, "server shutting down");
        await Promise.all([sessions.close(), ...[...shared.values()].map((connection) => connection.close())]);
        for (const ws of wss.clients) ws.terminate();
        httpServer.closeAllConnections();
        wss.close();
        await store.close();
        await cluster?.close();
        log.info("server_stop", {});
      })()),
  };
}

/** Streaming is opt-in per socket: `/ws/<user_id>?stream=1` (or `true`). */
function wantsStreaming(url: string | undefined): boolean {
  const value = new URL(url ?? "/", "http://localhost").searchParams.get("stream");
  return value === "1" || value === "true";
}

export function rawPathname(url: string | undefined): string {
  const raw = url ?? "/";
  const query = raw.indexOf("?");
  return query === -1 ? raw : raw.slice(0, query);
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data).toString("utf8");
}

// ---- command line -----------------------------------------------------------------------------

const USAGE = `Usage: npm start -- [options]

Options:
  --host HOST         address to listen on (default: $HOST or 127.0.0.1)
  --port PORT         port to listen on, 0 picks a free one (default: $PORT or 8000)
  --config FILE       config file (default: ./mcp_agent.config.yaml); secrets are read from
                      mcp_agent.secrets.yaml in the same folder
  --log-level LEVEL   debug, info, warning or error (default: the config's logger.level)
  -h, --help          show this help`;

const LOG_LEVELS: Record<string, LogLevel> = { debug: "debug", info: "info", warning: "warn", warn: "warn", error: "error" };

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        config: { type: "string" },
        "log-level": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    return;
  }
  // An empty HOST or PORT in the environment counts as unset.
  const portText = values.port ?? (env.PORT || "8000");
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    const source = values.port !== undefined ? "--port" : "PORT";
    console.error(`${source} must be a number from 0 to 65535, got "${portText}"`);
    process.exit(2);
  }
  const levelText = values["log-level"];
  const level = levelText === undefined ? undefined : LOG_LEVELS[levelText.toLowerCase()];
  if (levelText !== undefined && !level) {
    console.error(`--log-level must be one of debug, info, warning, error; got "${levelText}"`);
    process.exit(2);
  }
  let config: Config;
  try {
    config = loadConfig(values.config ?? "mcp_agent.config.yaml", env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`Invalid configuration: ${error.message}`);
    process.exit(2);
  }
  const log = loggerFromConfig(config, { level });
  // A server that never listened has nothing to log: its failed start is one line on stderr,
  // not that line plus a `server_stop` from the clean-up.
  let muted = false;
  const serverLog: Logger = {
    debug: (event, fields) => muted || log.debug(event, fields),
    info: (event, fields) => muted || log.info(event, fields),
    warn: (event, fields) => muted || log.warn(event, fields),
    error: (event, fields) => muted || log.error(event, fields),
    filePath: log.filePath,
    close: () => log.close(),
  };
  const host = values.host ?? (env.HOST || "127.0.0.1");
  let server: AgentServer;
  try {
    server = createAgentServer({ config, log: serverLog, host, port });
  } catch (error) {
    // What is only checked when its part starts (fetch allow_hosts, the session database) stops
    // the start like a config error.
    console.error(`Cannot start: ${(error as Error).message}`);
    await log.close();
    process.exit(2);
  }
  let address;
  try {
    address = await server.listen();
  } catch (error) {
    const code = error instanceof Error && "code" in error ? error.code : undefined;
    const reason = code === "EADDRINUSE" ? "the port is already in use" : code === "EADDRNOTAVAIL" ? "that address is not on this machine" : (error as Error).message;
    console.error(`Cannot listen on ${host}:${port}: ${reason}`);
    muted = true;
    await server.close();
    await log.close();
    process.exit(1);
  }
  let shuttingDown = false;
  const shutdown = (signal: string) => {
    // A second Ctrl-C while closing must not kill us with a non-zero status: the first one wins.
    if (shuttingDown) return;
    shuttingDown = true;
    log.info("shutdown", { signal });
    // A stuck child must not keep us past the promised 5 seconds.
    setTimeout(() => process.exit(0), 4500).unref();
    void server
      .close()
      .then(() => log.close())
      .finally(() => process.exit(0));
  };
  // Handlers before the banner: whoever waits for the banner may signal us right away.
  process.on("SIGINT", () => shutdown("SIGINT"));
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  console.log(`MCP agent server listening on ${address.url} (WebSocket: ${address.url.replace(/^http/, "ws")}/ws/<user_id>)`);
  if (!isLoopbackBind(host) && !config.server.auth_token) {
    console.log(
      `Warning: listening on ${host}, reachable from other machines, without a token: anyone who can reach it gets an agent with your API key. Set server.auth_token (or MCP_AGENT_AUTH_TOKEN).`,
    );
    log.warn("no_auth_token", { host });
  }
  if (!config.openai.api_key) {
    console.log("No OpenAI API key is set: chat messages will get an error until you set openai.api_key in mcp_agent.secrets.yaml or OPENAI_API_KEY.");
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main(process.argv.slice(2), process.env);
}
