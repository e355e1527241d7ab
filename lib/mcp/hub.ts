// MCP clients: one McpConnection per configured server; one McpHub per session owns its
// connections (and only borrows shared ones such as the built-in fetch) and closes them all.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { SseError } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ToolListChangedNotificationSchema, type Progress } from "@modelcontextprotocol/sdk/types.js";
import { createFetchServer, fetchToolOptions, OWNER_META_KEY } from "../fetch/fetch-tool.ts";
import { createFilesystemServer, WORKSPACE_META } from "../filesystem/server.ts";
import type { WorkspaceQuota } from "../files/quota.ts";
import type { ToolCallOptions, ToolCatalog, ToolOutcome, ToolRoute, Toolbox } from "../../agent.ts";
import {
  clientCapabilities,
  installClientHandlers,
  installLogHandler,
  type ClientRequests,
  type SamplingPolicy,
} from "./client-requests.ts";
import { mapToolResult } from "./content.ts";
import type { McpServerConfig } from "../config.ts";
import type { ServerInfo, ServerState } from "../protocol.ts";
import type { Logger } from "../log.ts";
import { ProcessGroupStdioTransport, resolveLocalNpx } from "./stdio-transport.ts";
import { buildToolCatalog, type McpToolInfo } from "./tools.ts";

const CLIENT_INFO = { name: "mcp-agent-ws", version: "0.1.0" };

export interface ConnectionLimits {
  /** A tool result longer than this is cut, with a note saying so (each part, and the whole). */
  maxToolResultChars: number;
  /** An image larger than this (decoded bytes) is not passed to the model. */
  maxToolImageBytes: number;
  /** Restarts after a crash before the server is left failed. */
  maxRestarts: number;
}

/** A call as the hub makes it: the agent's options, plus `_meta` for a shared per-workspace server. */
type ConnectionCallOptions = ToolCallOptions & { meta?: Record<string, unknown> };

/** How to make a fresh transport each time the server (re)starts. */
export type TransportFactory = () => Transport & { pid?: number };

/** What a connection of one user's own may ask that user (roots, sampling, elicitation). */
export interface AskBack {
  roots: { uri: string; name: string }[];
  sampling: SamplingPolicy;
  requests: () => ClientRequests | undefined;
}

export class McpConnection {
  readonly name: string;
  readonly transportName: string;
  readonly shared: boolean;
  /** Shared, yet each call works in its caller's workspace (the built-in filesystem). */
  readonly perWorkspace: boolean;
  #state: ServerState = "stopped";
  #error: string | undefined;
  #tools: McpToolInfo[] = [];
  /** Bumped whenever the tool list changes, so the hub rebuilds the model's catalog. */
  #toolsVersion = 0;
  /** A tools/list_changed refresh in flight: the next model call waits for it. */
  #refreshing: Promise<void> | undefined;
  #client: Client | undefined;
  #transport: (Transport & { pid?: number }) | undefined;
  #starting: Promise<void> | undefined;
  #restarts = 0;
  #reconnects = 0;
  #lastReconnectAt: number | undefined;
  #nextStartAt = 0;
  /** An SSE stream that broke (the server went away): our session there is gone, reconnect before the next call. */
  #streamLost = false;
  readonly #makeTransport: TransportFactory;
  readonly #allowedTools: Set<string> | undefined;
  readonly #timeoutMs: number;
  readonly #maxCallMs: number;
  readonly #limits: ConnectionLimits;
  readonly #log: Logger;
  readonly #logFields: Record<string, unknown>;
  readonly #askBack: AskBack | undefined;

  constructor(options: {
    name: string;
    transportName: string;
    makeTransport: TransportFactory;
    allowedTools?: string[];
    timeoutMs: number;
    /** Overall cap of a call whose timeout progress keeps restarting; default: the timeout. */
    maxCallMs?: number;
    limits: ConnectionLimits;
    log: Logger;
    logFields?: Record<string, unknown>;
    shared?: boolean;
    /** Absent for a shared connection: it serves every user, so it never asks one of them. */
    askBack?: AskBack;
    perWorkspace?: boolean;
  }) {
    this.name = options.name;
    this.transportName = options.transportName;
    this.shared = options.shared ?? false;
    this.perWorkspace = options.perWorkspace ?? false;
    this.#makeTransport = options.makeTransport;
    this.#allowedTools = options.allowedTools ? new Set(options.allowedTools) : undefined;
    this.#timeoutMs = options.timeoutMs;
    this.#maxCallMs = Math.max(options.maxCallMs ?? options.timeoutMs, options.timeoutMs);
    this.#limits = options.limits;
    this.#log = options.log;
    this.#logFields = { server: options.name, ...options.logFields };
    this.#askBack = options.askBack;
  }

  get state(): ServerState {
    return this.#state;
  }

  get #isRemote(): boolean {
    return this.transportName === "sse" || this.transportName === "streamable_http";
  }

  /** A remote server that could not be reached: the next turn tries it again. */
  get retryable(): boolean {
    return this.#state === "failed" && this.#isRemote;
  }

  get toolsVersion(): number {
    return this.#toolsVersion;
  }

  /** Offered to the model while ready, and while exited too: calling one is what restarts it. */
  get tools(): readonly McpToolInfo[] {
    return this.#state === "ready" || this.#state === "exited" ? this.#tools : [];
  }

  /** Resolves once a tools/list_changed refresh in flight (if any) has finished. */
  async settled(): Promise<void> {
    await this.#refreshing;
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
      reconnects: this.#reconnects,
      ...(this.#lastReconnectAt !== undefined ? { last_reconnect_at: new Date(this.#lastReconnectAt).toISOString() } : {}),
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

  #newClient(): Client {
    const client = new Client(CLIENT_INFO, { capabilities: clientCapabilities(this.#askBack !== undefined) });
    if (this.#askBack) {
      installClientHandlers(client, { server: this.name, ...this.#askBack, log: this.#log, logFields: this.#logFields });
    } else installLogHandler(client, this.#log, this.#logFields);
    // The model's next call sees the new list: the hub waits for this refresh before building its catalog.
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
      // Each refresh waits for the one before it; only the latest clears the slot.
      const refreshing: Promise<void> = this.#refreshTools(client).finally(() => {
        if (this.#refreshing === refreshing) this.#refreshing = undefined;
      });
      this.#refreshing = refreshing;
    });
    return client;
  }

  async #listTools(client: Client): Promise<McpToolInfo[]> {
    const listed = await client.listTools(undefined, { timeout: this.#timeoutMs });
    return listed.tools
      .filter((tool) => !this.#allowedTools || this.#allowedTools.has(tool.name))
      .map((tool) => ({
        name: tool.name,
        description: tool.description,
        inputSchema: tool.inputSchema,
        ...(tool.execution?.taskSupport ? { taskSupport: tool.execution.taskSupport } : {}),
      }));
  }

  async #refreshTools(client: Client): Promise<void> {
    await this.#refreshing?.catch(() => undefined);
    try {
      const tools = await this.#listTools(client);
      if (this.#client !== client) return;
      this.#tools = tools;
      this.#toolsVersion++;
      this.#log.info("mcp_tools_changed", { ...this.#logFields, tools: tools.length });
    } catch (error) {
      this.#log.warn("mcp_tools_refresh_failed", { ...this.#logFields, error: errorMessage(error) });
    }
  }

  async #start(): Promise<void> {
    const started = Date.now();
    this.#state = "starting";
    this.#log.info("mcp_server_starting", this.#logFields);
    const client = this.#newClient();
    let transport: (Transport & { pid?: number }) | undefined;
    try {
      transport = this.#makeTransport();
      this.#transport = transport;
      this.#client = client;
      await client.connect(transport, { timeout: this.#timeoutMs });
      const tools = await this.#listTools(client);
      if (this.#isClosed()) {
        await closeClient(client, transport);
        return;
      }
      this.#tools = tools;
      this.#toolsVersion++;
      this.#state = "ready";
      this.#error = undefined;
      this.#streamLost = false;
      client.onclose = () => this.#onUnexpectedClose(client);
      // An SSE server that restarts forgets our session but answers nothing to a POST for it: the
      // broken event stream is the only sign, so the next call starts a new session first.
      client.onerror = (error) => {
        if (this.#client === client && error instanceof SseError) this.#streamLost = true;
      };
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
      if (retry) this.#nextStartAt = Date.now() + backoffMs(this.#restarts);
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
    // The first crash restarts at once on the next call; later ones wait 1 s, 2 s, 4 s ... so a
    // crash loop cannot spin.
    this.#nextStartAt = Date.now() + (this.#restarts === 0 ? 0 : backoffMs(this.#restarts));
    this.#log.warn("mcp_server_exited", { ...this.#logFields, restarts: this.#restarts });
  }

  /** After a crash: restarts now, or waits for the backoff when it ends within `waitMs`. */
  async #restartAfterCrash(waitMs: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.#restarts >= this.#limits.maxRestarts) {
      this.#state = "failed";
      this.#error = `the server crashed and was restarted ${this.#restarts} time${this.#restarts === 1 ? "" : "s"} (limits.mcp_max_restarts); it is not started again`;
      return;
    }
    const delay = this.#nextStartAt - Date.now();
    if (delay > waitMs) return;
    if (delay > 0 && !this.#starting) await abortableDelay(delay, signal);
    if (this.#state !== "exited") return this.start();
    this.#restarts++;
    await this.start();
  }

  /** A remote server forgot our session (it restarted): drop this client and initialize again. */
  async #reconnect(client: Client, reason: string): Promise<void> {
    if (this.#client === client) {
      this.#reconnects++;
      this.#lastReconnectAt = Date.now();
      this.#log.warn("mcp_session_lost", { ...this.#logFields, error: reason, reconnects: this.#reconnects });
      const transport = this.#transport;
      this.#client = undefined;
      this.#transport = undefined;
      this.#state = "stopped";
      client.onclose = undefined;
      await closeClient(client, transport);
    }
    await this.start();
  }

  /** Calls a tool; every failure is an outcome for the model, never a thrown error. */
  async callTool(tool: string, args: Record<string, unknown>, options: ConnectionCallOptions = {}): Promise<ToolOutcome> {
    const { signal } = options;
    if (this.#state === "exited") await this.#restartAfterCrash(this.#timeoutMs, signal);
    // A remote server that could not be reached may be up now: each call tries it again (a call
    // is what the user asked for, and is rate-limited already). A local command that failed stays failed.
    if (this.#state === "failed" && this.#isRemote) this.#state = "stopped";
    // A server stopped while idle, or whose session was lost, starts again on use.
    if (this.#state === "stopped") await this.start();
    const client = this.#client;
    if (this.#state !== "ready" || !client) {
      const backoff = this.#state === "exited" ? ` (restarting in ${Math.ceil((this.#nextStartAt - Date.now()) / 1000)} s)` : "";
      return {
        ok: false,
        text: `MCP server "${this.name}" is not available (${this.#state}${this.#error ? `: ${this.#error}` : ""})${backoff}`,
      };
    }
    const known = this.#tools.find((candidate) => candidate.name === tool);
    if (!known) return { ok: false, text: `Unknown tool "${tool}" on MCP server "${this.name}"` };
    if (this.#streamLost) {
      await this.#reconnect(client, "the SSE event stream broke");
      const again = this.#client;
      if (this.#state !== "ready" || !again)
        return {
          ok: false,
          text: `MCP server "${this.name}" lost its session and could not be reached again: ${this.#error ?? "unknown error"}`,
        };
      return this.#callOnce(again, known, args, options);
    }
    return this.#callOnce(client, known, args, options);
  }

  async #callOnce(client: Client, known: McpToolInfo, args: Record<string, unknown>, options: ConnectionCallOptions): Promise<ToolOutcome> {
    const { signal } = options;
    const tool = known.name;
    try {
      return await this.#call(client, known, args, options);
    } catch (error) {
      if (signal?.aborted) throw error;
      if (isSessionLost(error)) {
        // Once: a server that loses the session again right away is reported, not looped on.
        await this.#reconnect(client, errorMessage(error));
        const again = this.#client;
        if (this.#state === "ready" && again) {
          try {
            return await this.#call(again, known, args, options);
          } catch (retryError) {
            if (signal?.aborted) throw retryError;
            return { ok: false, text: `Tool "${tool}" on MCP server "${this.name}" failed: ${errorMessage(retryError)}` };
          }
        }
        return {
          ok: false,
          text: `MCP server "${this.name}" lost its session and could not be reached again: ${this.#error ?? "unknown error"}`,
        };
      }
      return { ok: false, text: `Tool "${tool}" on MCP server "${this.name}" failed: ${errorMessage(error)}` };
    }
  }

  async #call(client: Client, tool: McpToolInfo, args: Record<string, unknown>, options: ConnectionCallOptions): Promise<ToolOutcome> {
    const { signal, onProgress, meta } = options;
    const params = { name: tool.name, arguments: args, ...(meta ? { _meta: meta } : {}) };
    const requestOptions = {
      signal,
      timeout: this.#timeoutMs,
      // Every call carries a progress token; progress restarts the read timeout, up to the overall cap.
      onprogress: (progress: Progress) =>
        onProgress?.({
          progress: progress.progress,
          ...(progress.total !== undefined ? { total: progress.total } : {}),
          ...(progress.message !== undefined ? { message: progress.message } : {}),
        }),
      resetTimeoutOnProgress: true,
      maxTotalTimeout: this.#maxCallMs,
    };
    const caps = { maxTextChars: this.#limits.maxToolResultChars, maxImageBytes: this.#limits.maxToolImageBytes };
    if (tool.taskSupport !== "required") {
      const result = await client.callTool(params, undefined, requestOptions);
      return mapToolResult(result, caps);
    }
    // A tool that must run as a task: the SDK creates the task, polls it, and fetches its result.
    let steps = 0;
    for await (const message of client.experimental.tasks.callToolStream(params, undefined, requestOptions)) {
      switch (message.type) {
        case "taskCreated":
        case "taskStatus":
          steps++;
          onProgress?.({ progress: steps, message: message.task.statusMessage ?? message.task.status });
          break;
        case "result":
          return mapToolResult(message.result, caps);
        case "error":
          throw message.error;
        default:
          return message satisfies never;
      }
    }
    return { ok: false, text: `the task of tool "${tool.name}" ended without a result` };
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
    await closeClient(client, transport);
    this.#log.info("mcp_server_stopped", { ...this.#logFields, reason: "idle" });
  }

  /** Idempotent; stops the child process (and its group) if there is one, ends a remote session. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    const client = this.#client;
    const transport = this.#transport;
    this.#client = undefined;
    this.#transport = undefined;
    await this.#starting?.catch(() => undefined);
    await closeClient(client, transport);
    this.#log.info("mcp_server_closed", this.#logFields);
  }
}

/** Closes a client and its transport; a streamable HTTP session is ended with DELETE first, so the server frees it. */
async function closeClient(client: Client | undefined, transport: Transport | undefined): Promise<void> {
  if (transport instanceof StreamableHTTPClientTransport && transport.sessionId) {
    await transport.terminateSession().catch(() => undefined);
  }
  await client?.close().catch(() => undefined);
  await transport?.close().catch(() => undefined);
}

/** Backoff before the n-th restart (n ≥ 1): 1 s, 2 s, 4 s ... */
function backoffMs(restarts: number): number {
  return 1000 * 2 ** Math.max(0, restarts - 1);
}

function abortableDelay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * A remote server that restarted no longer knows our session: streamable HTTP answers 404, or
 * (like server-everything) 400 "No valid session ID provided"; an SSE server answers 404 to a
 * POST for a session it does not have.
 */
export function isSessionLost(error: unknown): boolean {
  if (error instanceof StreamableHTTPError) {
    if (error.code === 404) return true;
    if (error.code === 400 && /session/i.test(error.message)) return true;
  }
  if (error instanceof SseError && error.code === 404) return true;
  const message = errorMessage(error);
  return /\b(?:404|400)\b.*session|session (?:not found|unknown|expired)|no valid session/i.test(message);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describeStartError(error: unknown, name: string): string {
  if (error instanceof Error && "code" in error && error.code === "ENOENT") {
    return `command not found (is it installed and on PATH?) for MCP server "${name}" (mcp.servers.${name}.command)`;
  }
  const message = errorMessage(error);
  if (/Connection closed/i.test(message)) return `the server exited during start-up (${message}); see its stderr in the log`;
  return message;
}

/** Everything needed to build the connections of one session. */
export interface HubContext {
  log: Logger;
  limits: ConnectionLimits;
  /** Folders where `npx -y <pkg>` packages are looked for locally. */
  packageDirs: string[];
  /** Shared, in-process connections by server name (e.g. the built-in fetch). */
  shared: ReadonlyMap<string, McpConnection>;
  /** The config file's folder: a relative `cwd` is relative to it. */
  configDir: string;
}

/**
 * The spawn parameters of a stdio entry for one user. The server named `filesystem` gets the
 * user's workspace appended; the config's own args array is never touched.
 */
export function stdioParamsFor(name: string, entry: McpServerConfig, workspaceDir: string, packageDirs: string[], configDir: string) {
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
  const cwd = entry.cwd === undefined ? undefined : path.resolve(configDir, entry.cwd);
  return { command: resolved.command, args, env: { ...entry.env }, cwd };
}

const resolvedCommands = new WeakMap<McpServerConfig, Map<string, { command: string; args: string[] }>>();

export function connectionFor(
  name: string,
  entry: McpServerConfig,
  workspaceDir: string,
  context: HubContext,
  logFields: Record<string, unknown>,
  requests: () => ClientRequests | undefined = () => undefined,
): McpConnection {
  const common = {
    name,
    transportName: entry.transport,
    allowedTools: entry.allowed_tools,
    timeoutMs: entry.read_timeout_seconds * 1000,
    maxCallMs: entry.max_call_seconds * 1000,
    limits: context.limits,
    log: context.log,
    logFields,
    askBack: { roots: [{ uri: pathToFileURL(workspaceDir).href, name: "workspace" }], sampling: entry.sampling, requests },
  };
  const makeTransport = (): TransportFactory => {
    switch (entry.transport) {
      case "stdio": {
        const params = stdioParamsFor(name, entry, workspaceDir, context.packageDirs, context.configDir);
        return () => {
          // The npm filesystem server needs its root to exist; made here, on its first start, not on connect.
          if (name === "filesystem") mkdirSync(workspaceDir, { recursive: true, mode: 0o700 });
          return new ProcessGroupStdioTransport({
            ...params,
            names: { command: `mcp.servers.${name}.command`, cwd: `mcp.servers.${name}.cwd` },
            onStderrLine: (line) => context.log.debug("mcp_server_stderr", { ...logFields, server: name, line }),
          });
        };
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

/**
 * The built-in filesystem, in-process: one instance shared by every session; each call names its
 * caller's workspace, the root of that call. `ownFiles`: the server's files, never served.
 */
export function builtinFilesystemConnection(
  name: string,
  entry: McpServerConfig,
  ownFiles: string[],
  log: Logger,
  limits: ConnectionLimits,
  quota?: WorkspaceQuota,
): McpConnection {
  const server = createFilesystemServer({
    ...(quota ? { quota } : {}),
    maxReadBytes: entry.max_read_bytes,
    maxMediaBytes: entry.max_media_bytes,
    maxEntries: entry.max_entries,
    walkTimeoutMs: entry.walk_timeout_seconds * 1000,
    deny: ownFiles,
    configKey: `mcp.servers.${name}`,
  });
  return new McpConnection({
    name,
    transportName: "builtin",
    shared: true,
    perWorkspace: true,
    allowedTools: entry.allowed_tools,
    timeoutMs: entry.read_timeout_seconds * 1000,
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
  /** This session's workspace folder: the root of every call to a per-workspace server. */
  readonly #workspaceDir: string | undefined;
  #ready: Promise<void> | undefined;
  #catalog: ToolCatalog | undefined;
  #catalogKey = "";
  /** When a turn last needed the servers (epoch ms), for idle reaping. */
  #lastUsed = Date.now();

  readonly #requests: { current?: ClientRequests };
  /** The user this hub serves, named to shared servers, which share their work fairly by it. */
  readonly #owner: string | undefined;

  /** `requests`: the slot its connections read the session's ClientRequests from (see attach). */
  constructor(
    connections: McpConnection[],
    options: { workspaceDir?: string; owner?: string; requests?: { current?: ClientRequests } } = {},
  ) {
    this.#connections = connections;
    this.#workspaceDir = options.workspaceDir;
    this.#owner = options.owner;
    this.#requests = options.requests ?? {};
  }

  /** The session that servers' sampling and elicitation requests go to. */
  attach(requests: ClientRequests): void {
    this.#requests.current = requests;
  }

  /** Waits for tools/list_changed refreshes in flight, so the next catalog() has the new tools. */
  async prepare(): Promise<void> {
    await Promise.all(this.#connections.map((connection) => connection.settled()));
  }

  get #owned(): McpConnection[] {
    return this.#connections.filter((connection) => !connection.shared);
  }

  /** True when it has servers of its own (not only shared, in-process ones) that ready() would start. */
  get ownsServers(): boolean {
    return this.#owned.length > 0;
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
    if (this.#connections.some((connection) => connection.state === "stopped" || connection.retryable)) this.#ready = undefined;
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
    const key = this.#connections.map((connection) => `${connection.name}:${connection.tools.length}:${connection.toolsVersion}`).join(",");
    if (!this.#catalog || this.#catalogKey !== key) {
      this.#catalog = buildToolCatalog(servers);
      this.#catalogKey = key;
    }
    return this.#catalog;
  }

  async callTool(route: ToolRoute, args: Record<string, unknown>, options?: ToolCallOptions): Promise<ToolOutcome> {
    this.#lastUsed = Date.now();
    const connection = this.#connections.find((candidate) => candidate.name === route.server);
    if (!connection) return { ok: false, text: `Unknown MCP server "${route.server}"` };
    // Shared in-process servers learn whose call it is (fair sharing) and, for the filesystem, its root.
    const meta: Record<string, unknown> = {};
    if (connection.shared && this.#owner !== undefined) meta[OWNER_META_KEY] = this.#owner;
    if (connection.perWorkspace && this.#workspaceDir) meta[WORKSPACE_META] = this.#workspaceDir;
    return connection.callTool(route.tool, args, { ...options, ...(Object.keys(meta).length > 0 ? { meta } : {}) });
  }

  info(): ServerInfo[] {
    return this.#connections.map((connection) => connection.info());
  }

  /** Closes every connection this hub owns; shared ones stay for the other sessions. */
  async close(): Promise<void> {
    await Promise.all(this.#owned.map((connection) => connection.close()));
  }
}
