// The server: node:http for the routes and the page, a `ws` server for /ws/<user_id>.
// createAgentServer() does nothing until listen(); tests make as many as they like.
import { mkdirSync, readFileSync } from "node:fs";
import http, { type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import type { Duplex } from "node:stream";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import OpenAI from "openai";
import { WebSocketServer, WebSocket, type RawData } from "ws";
import type { AgentSettings } from "./agent.ts";
import { ConfigError, loadConfig, resolveConfigPath, type Config, type LogLevel } from "./config.ts";
import { loggerFromConfig, redact, type Logger } from "./log.ts";
import {
  builtinFetchConnection,
  commandExists,
  connectionFor,
  DEFAULT_CONNECTION_LIMITS,
  McpHub,
  usesBuiltinFetch,
  type HubContext,
  type McpConnection,
} from "./mcp.ts";
import {
  BINARY_FRAME_ERROR,
  encodeFrame,
  errorFrame,
  isValidUserId,
  parseClientFrame,
  USER_ID_RULE,
  welcomeFrame,
  type ServerFrame,
} from "./protocol.ts";
import { handleRequest, rejectUpgrade } from "./routes.ts";
import { SessionManager, type Peer } from "./session.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MAX_PAYLOAD_BYTES = 1024 * 1024;
/** Close code for "going away": the server is shutting down. */
const CLOSE_GOING_AWAY = 1001;

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
  const secrets = [config.openai.api_key].filter((value): value is string => Boolean(value));
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
  const shared = new Map<string, McpConnection>();
  for (const [name, entry] of Object.entries(config.mcp.servers)) {
    const builtin = usesBuiltinFetch(entry, () => commandExists("uvx"));
    if (!builtin) continue;
    if (builtin === "fallback") {
      log.warn("fetch_fallback", {
        server: name,
        message: `"uvx" is not installed, so mcp.servers.${name} (uvx mcp-server-fetch) uses the built-in fetch tool instead. Set "builtin: fetch" to silence this, or install uv to run the Python server`,
      });
    }
    shared.set(name, builtinFetchConnection(name, entry, log, DEFAULT_CONNECTION_LIMITS));
  }
  const hubContext: HubContext = {
    log,
    limits: DEFAULT_CONNECTION_LIMITS,
    packageDirs: [config.configDir, HERE],
    shared,
  };
  const createHub = (userId: string, sessionId: string) => {
    const workspaceDir = path.join(workspaceRoot, userId);
    mkdirSync(workspaceDir, { recursive: true });
    const fields = { user_id: userId, session_id: sessionId };
    const connections = Object.entries(config.mcp.servers).map(
      ([name, entry]) => shared.get(name) ?? connectionFor(name, entry, workspaceDir, hubContext, fields),
    );
    return new McpHub(connections);
  };
  const sessions = new SessionManager({
    deps: { agent, log, maxHistoryMessages: config.session.max_history_messages, redact: redactText },
    createHub,
    idleMs: config.session.idle_timeout_seconds * 1000,
    sweepIntervalMs: config.session.sweep_interval_seconds * 1000,
  });

  let indexCache: Buffer | undefined;
  const indexHtml = () => (indexCache ??= readFileSync(path.join(HERE, "index.html")));

  const httpServer = http.createServer((req, res) => handleRequest(req, res, { sessions, indexHtml }));
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD_BYTES, perMessageDeflate: false });
  let nextPeerId = 1;

  httpServer.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    // The raw path, not a URL-normalised one: `/ws/..` must reach the user id check, not become `/`.
    const pathname = rawPathname(req.url);
    const found = /^\/ws\/([^/]*)$/.exec(pathname);
    if (!found) return rejectUpgrade(socket, 404, { error: `not found: ${pathname}; connect to /ws/<user_id>` });
    let userId: string;
    try {
      userId = decodeURIComponent(found[1] ?? "");
    } catch {
      return rejectUpgrade(socket, 400, { error: `invalid user id: ${USER_ID_RULE}` });
    }
    if (!isValidUserId(userId)) return rejectUpgrade(socket, 400, { error: `invalid user id: ${USER_ID_RULE}` });
    const streaming = wantsStreaming(req.url);
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, userId, streaming));
  });

  function onConnection(ws: WebSocket, userId: string, streaming: boolean): void {
    const session = sessions.getOrCreate(userId);
    const peer: Peer = {
      id: nextPeerId++,
      streaming,
      send: (frame: ServerFrame) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(encodeFrame(frame));
      },
    };
    const fields = { user_id: userId, session_id: session.sessionId, socket: peer.id, streaming };
    const welcome = welcomeFrame(userId, session.sessionId);
    peer.send(streaming ? { type: "welcome", ...welcome, stream: true } : welcome);
    session.attach(peer);
    log.info("connect", { ...fields, open_sockets: session.peers.size });

    ws.on("message", (data: RawData, isBinary: boolean) => {
      if (isBinary) return peer.send(errorFrame(BINARY_FRAME_ERROR));
      const parsed = parseClientFrame(rawText(data));
      if (!parsed.ok) return peer.send(errorFrame(parsed.error));
      const frame = parsed.frame;
      switch (frame.type) {
        case "ignored":
          return;
        case "chat":
          session.submit(peer, frame.message);
          return;
        case "cancel":
          session.cancel();
          return;
        case "history":
          return peer.send({ type: "history", user_id: userId, session_id: session.sessionId, items: session.historyItems() });
        default:
          return frame satisfies never;
      }
    });
    // Malformed frames (bad UTF-8, oversize, protocol errors) end up here: ws closes that socket
    // with the right code; the process must never see them as an uncaught error.
    ws.on("error", (error) => log.warn("socket_error", { ...fields, error: error.message }));
    ws.on("close", (code) => {
      session.detach(peer);
      log.info("disconnect", { ...fields, code, open_sockets: session.peers.size });
    });
  }

  let closing: Promise<void> | undefined;
  return {
    sessions,
    listen: () =>
      new Promise((resolve, reject) => {
        httpServer.once("error", reject);
        httpServer.listen(options.port ?? 8000, host, () => {
          httpServer.off("error", reject);
          const { port } = httpServer.address() as AddressInfo;
          sessions.startSweeper();
          for (const connection of shared.values()) void connection.start();
          const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
          log.info("server_start", { url, model: config.openai.default_model, servers: Object.keys(config.mcp.servers) });
          resolve({ url, port, host });
        });
      }),
    close: () =>
      (closing ??= (async () => {
        httpServer.close();
        for (const ws of wss.clients) ws.close(CLOSE_GOING_AWAY, "server shutting down");
        await Promise.all([sessions.close(), ...[...shared.values()].map((connection) => connection.close())]);
        for (const ws of wss.clients) ws.terminate();
        httpServer.closeAllConnections();
        wss.close();
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
  const portText = values.port ?? env.PORT ?? "8000";
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    console.error(`--port must be a number from 0 to 65535, got "${portText}"`);
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
  const host = values.host ?? env.HOST ?? "127.0.0.1";
  const server = createAgentServer({ config, log, host, port });
  let address;
  try {
    address = await server.listen();
  } catch (error) {
    const code = error instanceof Error && "code" in error ? error.code : undefined;
    const reason = code === "EADDRINUSE" ? "the port is already in use" : code === "EADDRNOTAVAIL" ? "that address is not on this machine" : (error as Error).message;
    console.error(`Cannot listen on ${host}:${port}: ${reason}`);
    await server.close();
    await log.close();
    process.exit(1);
  }
  console.log(`MCP agent server listening on ${address.url} (WebSocket: ${address.url.replace(/^http/, "ws")}/ws/<user_id>)`);
  if (!config.openai.api_key) {
    console.log("No OpenAI API key is set: chat messages will get an error until you set openai.api_key in mcp_agent.secrets.yaml or OPENAI_API_KEY.");
  }
  const shutdown = (signal: string) => {
    log.info("shutdown", { signal });
    // A stuck child must not keep us past the promised 5 seconds.
    setTimeout(() => process.exit(0), 4500).unref();
    void server
      .close()
      .then(() => log.close())
      .finally(() => process.exit(0));
  };
  process.once("SIGINT", () => shutdown("SIGINT"));
  process.once("SIGTERM", () => shutdown("SIGTERM"));
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main(process.argv.slice(2), process.env);
}
