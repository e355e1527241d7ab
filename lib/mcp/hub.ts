// MCP clients: one McpConnection per configured server; one McpHub per session owns its
// connections (and only borrows shared ones such as the built-in fetch) and closes them all.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { existsSync } from "node:fs";
import path from "node:path";
import { createFetchServer, fetchToolOptions } from "../fetch/fetch-tool.ts";
import type { ToolOutcome, Toolbox } from "../../agent.ts";
import type { McpServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { ProcessGroupStdioTransport, resolveLocalNpx } from "./stdio-transport.ts";
import { buildToolCatalog, type McpToolInfo, type ToolCatalog, type ToolRoute } from "./tools.ts";

const CLIENT_INFO = { name: "mcp-agent-ws", version: "0.1.0" };

/** `stopped`: not running now (not started yet, or reaped while idle); the next use starts it. */
export type ServerState = "stopped" | "starting" | "ready" | "failed" | "exited" | "closed";

export interface ServerInfo {
  name: string;
  transport: string;
  state: ServerState;
  tools: number;
  error?: string;
  pid?: number;
  restarts: number;
  shared: boolean;
}

export interface ConnectionLimits {
  /** A tool result longer than this is cut, with a note saying so. */
  maxToolResultChars: number;
  /** Restarts after a crash before the server is left failed. */
  maxRestarts: number;
}

/** How to make a fresh transport each time the server (re)starts. */
export type TransportFactory = () => Transport & { pid?: number };

export class McpConnection {
  readonly name: string;
  readonly transportName: string;
  readonly shared: boolean;
  #state: ServerState = "stopped";
  #error: string | undefined;
  #tools: McpToolInfo[] = [];
  #client: Client | undefined;
  #transport: (Transport & { pid?: number }) | undefined;
  #starting: Promise<void> | undefined;
  #restarts = 0;
  #nextStartAt = 0;
  readonly #makeTransport: TransportFactory;
  readonly #allowedTools: Set<string> | undefined;
  readonly #timeoutMs: number;
  readonly #limits: ConnectionLimits;
  readonly #log: Logger;
  readonly #logFields: Record<string, unknown>;

  constructor(options: {
    name: string;
    transportName: string;
    makeTransport: TransportFactory;
    allowedTools?: string[];
    timeoutMs: number;
    limits: ConnectionLimits;
    log: Logger;
    logFields?: Record<string, unknown>;
    shared?: boolean;
  }) {
    this.name = options.name;
    this.transportName = options.transportName;
    this.shared = options.shared ?? false;
    this.#makeTransport = options.makeTransport;
    this.#allowedTools = options.allowedTools ? new Set(options.allowedTools) : undefined;
    this.#timeoutMs = options.timeoutMs;
    this.#limits = options.limits;
    this.#log = options.log;
    this.#logFields = { server: options.name, ...options.logFields };
  }

  get state(): ServerState {
    return this.#state;
  }

  /** Offered to the model while ready, and while exited too: calling one is what restarts it. */
  get tools(): readonly McpToolInfo[] {
    return this.#state === "ready" || this.#state === "exited" ? this.#tools : [];
  }

  info(): ServerInfo {
    return {
      name: this.name,
      transport: this.transportName,
      state: this.#state,
      tools: this.#tools.length,
      ...(this.#error ? { error: this.#error } : {}),
      ...(this.#transport?.pid ? { pid: this.#transport.pid } : {}),
      restarts: this.#restarts,
      shared: this.shared,
    };
  }

  /** Starts the server once; concurrent callers share the same attempt. Never throws. */
  start(): Promise<void> {
    if (this.#state === "ready" || this.#state === "closed") return Promise.resolve();
    this.#starting ??= this.#start().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    const started = Date.now();
    this.#state = "starting";
    this.#log.info("mcp_server_starting", this.#logFields);
    const client = new Client(CLIENT_INFO);
    let transport: (Transport & { pid?: number }) | undefined;
    try {
      transport = this.#makeTransport();
      this.#transport = transport;
      this.#client = client;
      await client.connect(transport, { timeout: this.#timeoutMs });
      const listed = await client.listTools(undefined, { timeout: this.#timeoutMs });
      this.#tools = listed.tools
        .filter((tool) => !this.#allowedTools || this.#allowedTools.has(tool.name))
        .map((tool) => ({ name: tool.name, description: tool.description, inputSchema: tool.inputSchema }));
      if (this.#isClosed()) {
        await client.close().catch(() => undefined);
        return;
      }
      this.#state = "ready";
      this.#error = undefined;
      client.onclose = () => this.#onUnexpectedClose(client);
      this.#log.info("mcp_server_ready", {
        ...this.#logFields,
        tools: this.#tools.length,
        pid: transport.pid,
        duration_ms: Date.now() - started,
      });
    } catch (error) {
      const reason = describeStartError(error, this.name);
      await client.close().catch(() => undefined);
      await transport?.close().catch(() => undefined);
      if (this.#isClosed()) return;
      // A restart after a crash that fails to start is one more crash: it may be tried again
      // (with backoff) until the restart cap, rather than giving up at once.
      const retry = this.#restarts > 0 && this.#restarts < this.#limits.maxRestarts;
      this.#state = retry ? "exited" : "failed";
      if (retry) this.#nextStartAt = Date.now() + 1000 * 2 ** this.#restarts;
      this.#error = reason;
      this.#client = undefined;
      this.#transport = undefined;
      this.#log.warn("mcp_server_failed", { ...this.#logFields, error: reason, duration_ms: Date.now() - started });
    }
  }

  // A method, not an inline comparison: close() may run while start() awaits.
  #isClosed(): boolean {
    return this.#state === "closed";
  }

  #onUnexpectedClose(client: Client): void {
    if (this.#client !== client || this.#state === "closed") return;
    this.#state = "exited";
    this.#error = "the server process exited";
    this.#client = undefined;
    this.#transport = undefined;
    // Backoff before the next start on use: 1 s, 2 s, 4 s ... so a crash loop cannot spin.
    this.#nextStartAt = Date.now() + 1000 * 2 ** this.#restarts;
    this.#log.warn("mcp_server_exited", { ...this.#logFields, restarts: this.#restarts });
  }

  /** Calls a tool; every failure is an outcome for the model, never a thrown error. */
  async callTool(tool: string, args: Record<string, unknown>, signal?: AbortSignal): Promise<ToolOutcome> {
    if (this.#state === "exited") {
      if (this.#restarts >= this.#limits.maxRestarts) {
        this.#state = "failed";
        this.#error = `the server crashed and was restarted ${this.#restarts} time${this.#restarts === 1 ? "" : "s"} (limits.mcp_max_restarts); it is not started again`;
      } else if (Date.now() >= this.#nextStartAt) {
        this.#restarts++;
        await this.start();
      }
    }
    const client = this.#client;
    if (this.#state !== "ready" || !client) {
      return { ok: false, text: `MCP server "${this.name}" is not available (${this.#state}${this.#error ? `: ${this.#error}` : ""})` };
    }
    if (!this.#tools.some((known) => known.name === tool)) {
      return { ok: false, text: `Unknown tool "${tool}" on MCP server "${this.name}"` };
    }
    try {
      const result = await client.callTool({ name: tool, arguments: args }, undefined, { signal, timeout: this.#timeoutMs });
      const text = resultText(result.content);
      return { ok: result.isError !== true, text: capText(text, this.#limits.maxToolResultChars) };
    } catch (error) {
      if (signal?.aborted) throw error;
      return { ok: false, text: `Tool "${tool}" on MCP server "${this.name}" failed: ${errorMessage(error)}` };
    }
  }

  /** Stops the server to free its process while idle; the next start() brings it back. */
  async stop(): Promise<void> {
    if (this.#state === "closed" || this.#state === "stopped") return;
    await this.#starting?.catch(() => undefined);
    const client = this.#client;
    const transport = this.#transport;
    this.#client = undefined;
    this.#transport = undefined;
    this.#state = "stopped";
    await client?.close().catch(() => undefined);
    await transport?.close().catch(() => undefined);
    this.#log.info("mcp_server_stopped", { ...this.#logFields, reason: "idle" });
  }

  /** Idempotent; stops the child process (and its group) if there is one. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    const client = this.#client;
    const transport = this.#transport;
    this.#client = undefined;
    this.#transport = undefined;
    await this.#starting?.catch(() => undefined);
    await client?.close().catch(() => undefined);
    await transport?.close().catch(() => undefined);
    this.#log.info("mcp_server_closed", this.#logFields);
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describeStartError(error: unknown, name: string): string {
  if (error instanceof Error && "code" in error && error.code === "ENOENT") {
    return `command not found (is it installed and on PATH?) for MCP server "${name}"`;
  }
  const message = errorMessage(error);
  if (/Connection closed/i.test(message)) return `the server exited during start-up (${message}); see its stderr in the log`;
  return message;
}

function capText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  return `${text.slice(0, maxChars)}\n\n[result cut: ${text.length} characters, only the first ${maxChars} are shown]`;
}

/** MCP result content to the text the model reads. */
function resultText(content: unknown): string {
  if (!Array.isArray(content)) return "";
  const parts: string[] = [];
  for (const item of content) {
    if (typeof item !== "object" || item === null) continue;
    if ("type" in item && item.type === "text" && "text" in item && typeof item.text === "string") parts.push(item.text);
    else if ("type" in item && typeof item.type === "string") parts.push(`[${item.type} content]`);
  }
  return parts.join("\n");
}

/** Everything needed to build the connections of one session. */
export interface HubContext {
  log: Logger;
  limits: ConnectionLimits;
  /** Folders where `npx -y <pkg>` packages are looked for locally. */
  packageDirs: string[];
  /** Shared, in-process connections by server name (e.g. the built-in fetch). */
  shared: ReadonlyMap<string, McpConnection>;
}

/**
 * The spawn parameters of a stdio entry for one user. The server named `filesystem` gets the
 * user's workspace appended; the config's own args array is never touched.
 */
export function stdioParamsFor(name: string, entry: McpServerConfig, workspaceDir: string, packageDirs: string[]) {
  // The package look-up walks the file system: done once per entry, not once per session.
  const byDirs = resolvedCommands.get(entry) ?? new Map<string, { command: string; args: string[] }>();
  resolvedCommands.set(entry, byDirs);
  const dirsKey = packageDirs.join("\0");
  let resolved = byDirs.get(dirsKey);
  if (!resolved) {
    resolved = resolveLocalNpx(entry.command ?? "", entry.args, packageDirs);
    byDirs.set(dirsKey, resolved);
  }
  const args = name === "filesystem" ? [...resolved.args, workspaceDir] : [...resolved.args];
  return { command: resolved.command, args, env: { ...entry.env }, cwd: entry.cwd };
}

const resolvedCommands = new WeakMap<McpServerConfig, Map<string, { command: string; args: string[] }>>();

export function connectionFor(
  name: string,
  entry: McpServerConfig,
  workspaceDir: string,
  context: HubContext,
  logFields: Record<string, unknown>,
): McpConnection {
  const common = {
    name,
    transportName: entry.transport,
    allowedTools: entry.allowed_tools,
    timeoutMs: entry.read_timeout_seconds * 1000,
    limits: context.limits,
    log: context.log,
    logFields,
  };
  const makeTransport = (): TransportFactory => {
    switch (entry.transport) {
      case "stdio": {
        const params = stdioParamsFor(name, entry, workspaceDir, context.packageDirs);
        return () =>
          new ProcessGroupStdioTransport({
            ...params,
            onStderrLine: (line) => context.log.debug("mcp_server_stderr", { ...logFields, server: name, line }),
          });
      }
      case "sse":
        return () => new SSEClientTransport(new URL(entry.url ?? ""), { requestInit: { headers: entry.headers } });
      case "streamable_http":
        return () => new StreamableHTTPClientTransport(new URL(entry.url ?? ""), { requestInit: { headers: entry.headers } });
      case "websocket":
        return () => {
          throw new Error(`transport "websocket" is not supported (MCP server "${name}"): use stdio, sse or streamable_http`);
        };
      default:
        return entry.transport satisfies never;
    }
  };
  return new McpConnection({ ...common, makeTransport: makeTransport() });
}

/** True when `command` can be run: an existing path, or a name found on PATH. */
export function commandExists(command: string, pathVariable = process.env.PATH ?? ""): boolean {
  if (command.includes("/")) return existsSync(command);
  return pathVariable.split(path.delimiter).some((dir) => dir !== "" && existsSync(path.join(dir, command)));
}

/**
 * Which entries run the built-in fetch: those that say `builtin: fetch`, and the original's
 * `uvx mcp-server-fetch` when uvx is not installed (then `onFallback` is told once per entry).
 */
export function usesBuiltinFetch(entry: McpServerConfig, uvxInstalled: () => boolean): "builtin" | "fallback" | false {
  if (entry.builtin === "fetch") return "builtin";
  const isPythonFetch =
    entry.transport === "stdio" && path.basename(entry.command ?? "") === "uvx" && entry.args.includes("mcp-server-fetch");
  return isPythonFetch && !uvxInstalled() ? "fallback" : false;
}

/**
 * The built-in fetch server, in-process: one instance shared by every session (it keeps no
 * per-user state), so it costs nothing per user.
 */
export function builtinFetchConnection(name: string, entry: McpServerConfig, log: Logger, limits: ConnectionLimits): McpConnection {
  const server = createFetchServer(fetchToolOptions(entry));
  return new McpConnection({
    name,
    transportName: "builtin",
    shared: true,
    allowedTools: entry.allowed_tools,
    // The fetch has its own deadline; the MCP call waits a little longer so that deadline's clear message wins.
    timeoutMs: Math.max(entry.read_timeout_seconds, entry.fetch_timeout_seconds + 5) * 1000,
    limits,
    log,
    makeTransport: () => {
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      void server.close().then(() => server.connect(serverSide));
      return clientSide;
    },
  });
}

/** One session's MCP servers. */
export class McpHub implements Toolbox {
  readonly #connections: McpConnection[];
  #ready: Promise<void> | undefined;
  #catalog: ToolCatalog | undefined;
  #catalogKey = "";
  /** When a turn last needed the servers (epoch ms), for idle reaping. */
  #lastUsed = Date.now();

  /** Runs before the servers start (each time): what they need on disk is made only then. */
  readonly #beforeStart: (() => void) | undefined;

  constructor(connections: McpConnection[], beforeStart?: () => void) {
    this.#connections = connections;
    this.#beforeStart = beforeStart;
  }

  get #owned(): McpConnection[] {
    return this.#connections.filter((connection) => !connection.shared);
  }

  /** True while any server of its own is running or starting (it holds processes). */
  get warm(): boolean {
    return this.#owned.some((connection) => connection.state === "ready" || connection.state === "starting");
  }

  /**
   * Starts every server in parallel (again, after an idle stop); one that fails does not stop
   * the others. Resolves when each has started or failed.
   */
  ready(): Promise<void> {
    this.#lastUsed = Date.now();
    if (this.#connections.some((connection) => connection.state === "stopped")) this.#ready = undefined;
    if (!this.#ready) {
      try {
        this.#beforeStart?.();
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    }
    this.#ready ??= Promise.all(this.#connections.map((connection) => connection.start())).then(() => undefined);
    return this.#ready;
  }

  /** Stops its own servers if no turn needed them for `idleMs`; they start again on the next turn. */
  async reapIfIdle(now: number, idleMs: number): Promise<boolean> {
    if (!this.warm || now - this.#lastUsed <= idleMs) return false;
    this.#ready = undefined;
    await Promise.all(this.#owned.map((connection) => connection.stop()));
    return true;
  }

  /** The tools the model sees now, rebuilt only when the set of ready servers changes. */
  catalog(): ToolCatalog {
    const servers = this.#connections.map((connection) => ({ server: connection.name, tools: [...connection.tools] }));
    const key = servers.map((server) => `${server.server}:${server.tools.length}`).join(",");
    if (!this.#catalog || this.#catalogKey !== key) {
      this.#catalog = buildToolCatalog(servers);
      this.#catalogKey = key;
    }
    return this.#catalog;
  }

  async callTool(route: ToolRoute, args: Record<string, unknown>, signal?: AbortSignal): Promise<ToolOutcome> {
    this.#lastUsed = Date.now();
    const connection = this.#connections.find((candidate) => candidate.name === route.server);
    if (!connection) return { ok: false, text: `Unknown MCP server "${route.server}"` };
    return connection.callTool(route.tool, args, signal);
  }

  info(): ServerInfo[] {
    return this.#connections.map((connection) => connection.info());
  }

  /** Closes every connection this hub owns; shared ones stay for the other sessions. */
  async close(): Promise<void> {
    await Promise.all(this.#owned.map((connection) => connection.close()));
  }
}
