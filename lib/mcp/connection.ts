// One MCP server's connection, for its whole life: start, restart after a crash (counted, with
// backoff, capped at limits.mcp_max_restarts), reconnect to a remote server that forgot our
// session, tool calls (direct or as tasks), idle stop and close. The transport comes from a
// factory (transports.ts); what a crashed server may do next is decided in restarts.ts.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { ToolListChangedNotificationSchema, type Progress } from "@modelcontextprotocol/sdk/types.js";
import type { ToolCallOptions, ToolOutcome } from "../agent/types.ts";
import {
  clientCapabilities,
  installClientHandlers,
  installLogHandler,
  type ClientRequests,
  type SamplingPolicy,
} from "./client-requests.ts";
import { DEFAULT_MCP_BUDGETS, limitNotifications, type McpBudgets } from "./budgets.ts";
import { mapToolResult } from "./content.ts";
import type { ServerInfo, ServerState } from "../protocol.ts";
import type { Logger } from "../log.ts";
import { afterFailedStart, nextStartAfterCrash, restartDecision } from "./restarts.ts";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { ChangeListeners, withStderr, type StderrTail } from "./server-state.ts";
import { errorText, onePrefix } from "./error-text.ts";
import { completeUrlElicitations, urlElicitationsOf } from "./url-elicitation.ts";
import type { McpToolInfo } from "./tools.ts";
import { mcpServerStartSpan } from "../telemetry/spans.ts";
import type { TraceCarrier, Tracing } from "../telemetry/tracer.ts";
import {
  endRemoteSession,
  isRemoteTransport,
  isSessionLost,
  isStreamBroken,
  type McpTransport,
  type TransportFactory,
} from "./transports.ts";

const CLIENT_INFO = { name: "mcp-agent-ws", version: "0.1.0" };

export interface ConnectionLimits {
  /** A tool result longer than this is cut, with a note saying so (each part, and the whole). */
  maxToolResultChars: number;
  /** An image larger than this (decoded bytes) is not passed to the model. */
  maxToolImageBytes: number;
  /** Restarts after a crash before the server is left failed. */
  maxRestarts: number;
  /** Caps on what the server sends (default: DEFAULT_MCP_BUDGETS). */
  budgets?: McpBudgets;
}

/**
 * A call as the hub makes it: the agent's options, plus `_meta` for a shared per-workspace server,
 * and the W3C trace context of the tool call's span, which the server gets as `_meta.traceparent`
 * / `_meta.tracestate` (SEP-414).
 */
export type ConnectionCallOptions = ToolCallOptions & { meta?: Record<string, unknown>; trace?: TraceCarrier | undefined };

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
  #stateValue: ServerState = "stopped";
  #error: string | undefined;
  /** Told of every change a user would see (state, tools, error): the `servers` frame. */
  readonly #changes = new ChangeListeners();
  readonly #stderr: StderrTail | undefined;
  #needsAuth = false;
  readonly #userAdded: boolean;
  readonly #authHint: string | undefined;
  readonly #url: string | undefined;
  #tools: McpToolInfo[] = [];
  /** Bumped whenever the tool list changes, so the hub rebuilds the model's catalog. */
  #toolsVersion = 0;
  /** A tools/list_changed refresh in flight: the next model call waits for it. */
  #refreshing: Promise<void> | undefined;
  #client: Client | undefined;
  #transport: McpTransport | undefined;
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
  readonly #tracing: Tracing | undefined;

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
    tracing?: Tracing | undefined;
    /** A child's last stderr lines, for its failure message. */
    stderr?: StderrTail;
    userAdded?: boolean;
    /** Where the user authorizes this server, for the message of a 401 (OAuth). */
    authHint?: string;
    /** A remote server's URL, named in its errors. */
    url?: string;
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
    this.#tracing = options.tracing;
    this.#stderr = options.stderr;
    this.#userAdded = options.userAdded ?? false;
    this.#authHint = options.authHint;
    this.#url = options.url;
  }

  get state(): ServerState {
    return this.#state;
  }

  get #state(): ServerState {
    return this.#stateValue;
  }

  set #state(state: ServerState) {
    if (state === this.#stateValue) return;
    this.#stateValue = state;
    this.#changes.emit();
  }

  /** Calls `listener` after each change of state or tools; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    return this.#changes.add(listener);
  }

  /** The server answered 401 and waits for the user's authorization (OAuth). */
  get needsAuth(): boolean {
    return this.#needsAuth;
  }

  /** A server the user added, not one of the operator's. */
  get userAdded(): boolean {
    return this.#userAdded;
  }

  /** A failed server started again at the user's request (the page's Retry, Connect). */
  async retry(): Promise<void> {
    if (this.#state === "failed" || this.#state === "exited") {
      this.#restarts = 0;
      this.#state = "stopped";
    }
    await this.start();
  }

  get #isRemote(): boolean {
    return isRemoteTransport(this.transportName);
  }

  /** A remote server that could not be reached: the next turn tries it again. */
  get retryable(): boolean {
    return this.#state === "failed" && this.#isRemote && !this.#needsAuth;
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

  /**
   * Brings the server up if it should be: a stopped one starts, a remote one that could not be
   * reached is tried again; a local one that failed stays failed. A crashed one is left for the
   * next call to it, the one path that restarts it (counted, with backoff, capped): a turn's
   * ready() never restarts it behind the cap's back. Concurrent callers share one attempt. Never throws.
   */
  start(): Promise<void> {
    switch (this.#state) {
      case "ready":
      case "closed":
        return Promise.resolve();
      case "starting":
        return this.#starting ?? Promise.resolve();
      case "exited":
        return Promise.resolve();
      case "failed":
        // A server waiting for the user's sign-in is not asked again by every turn.
        return this.#isRemote && !this.#needsAuth ? this.#launch() : Promise.resolve();
      case "stopped":
        return this.#launch();
      default:
        return this.#state satisfies never;
    }
  }

  /** The one way a transport is made and connected; concurrent callers share the same attempt. */
  #launch(): Promise<void> {
    this.#starting ??= this.#start().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  #newClient(): Client {
    const client = new Client(CLIENT_INFO, { capabilities: clientCapabilities(this.#askBack !== undefined) });
    const { maxLogChars } = this.#limits.budgets ?? DEFAULT_MCP_BUDGETS;
    if (this.#askBack) {
      installClientHandlers(client, { server: this.name, ...this.#askBack, log: this.#log, logFields: this.#logFields, maxLogChars });
    } else installLogHandler(client, this.#log, this.#logFields, maxLogChars);
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
      this.#changes.emit();
      this.#log.info("mcp_tools_changed", { ...this.#logFields, tools: tools.length });
    } catch (error) {
      this.#log.warn("mcp_tools_refresh_failed", { ...this.#logFields, error: errorMessage(error) });
    }
  }

  async #start(): Promise<void> {
    const started = Date.now();
    const span = this.#tracing
      ? mcpServerStartSpan(this.#tracing, undefined, { server: this.name, transport: this.transportName })
      : undefined;
    try {
      await this.#startOnce(started);
    } finally {
      if (this.#state === "ready") span?.end({ "mcp_agent.mcp.tools": this.#tools.length });
      else {
        span?.fail("mcp_server_failed", this.#error);
        span?.end();
      }
    }
  }

  async #startOnce(started: number): Promise<void> {
    this.#state = "starting";
    this.#log.info("mcp_server_starting", this.#logFields);
    const client = this.#newClient();
    let transport: McpTransport | undefined;
    this.#stderr?.clear();
    try {
      transport = this.#makeTransport();
      limitNotifications(transport, this.name, this.#limits.budgets ?? DEFAULT_MCP_BUDGETS, (dropped) =>
        this.#log.warn("mcp_notifications_dropped", { ...this.#logFields, dropped, limit: "limits.mcp_notifications_per_second" }),
      );
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
      this.#needsAuth = false;
      this.#error = undefined;
      this.#state = "ready";
      this.#streamLost = false;
      client.onclose = () => this.#onUnexpectedClose(client);
      // An SSE server that restarts forgets our session but answers nothing to a POST for it: the
      // broken event stream is the only sign, so the next call starts a new session first.
      client.onerror = (error) => {
        if (this.#client === client && isStreamBroken(error)) this.#streamLost = true;
      };
      this.#log.info("mcp_server_ready", {
        ...this.#logFields,
        tools: this.#tools.length,
        pid: transport.pid,
        duration_ms: Date.now() - started,
      });
    } catch (error) {
      await client.close().catch(() => undefined);
      await transport?.close().catch(() => undefined);
      // After the close: the child's last lines have been read by then.
      this.#needsAuth = error instanceof UnauthorizedError;
      const reason = this.#needsAuth
        ? this.#authMessage()
        : withStderr(describeStartError(error, this.name, this.#url), this.#stderr?.lines() ?? []);
      if (this.#isClosed()) return;
      const next = afterFailedStart(this.#restarts, this.#limits.maxRestarts, Date.now());
      this.#error = reason;
      if (next.state === "exited") this.#nextStartAt = next.nextStartAt;
      this.#state = next.state;
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
    // A limit it hit (CPU time, memory) says so here: the user reads it in the tool error and the server's state.
    this.#error = withStderr(this.#transport?.exitReason ?? "the server process exited", this.#stderr?.lines() ?? []);
    this.#state = "exited";
    this.#client = undefined;
    this.#transport = undefined;
    this.#nextStartAt = nextStartAfterCrash(this.#restarts, Date.now());
    this.#log.warn("mcp_server_exited", { ...this.#logFields, restarts: this.#restarts });
  }

  /**
   * After a crash: restarts now, or after the backoff when it ends within `waitMs`, counting the
   * restart; at the cap (limits.mcp_max_restarts) the server is left failed.
   */
  async #restartAfterCrash(waitMs: number, signal: AbortSignal | undefined): Promise<void> {
    // A failed restart may still be settling its attempt: join it rather than start a second one.
    if (this.#starting) return this.#starting;
    const crash = { restarts: this.#restarts, nextStartAt: this.#nextStartAt };
    const decision = restartDecision(crash, this.#limits.maxRestarts, Date.now(), waitMs);
    switch (decision.kind) {
      case "give_up":
        this.#state = "failed";
        this.#error = decision.error;
        this.#log.warn("mcp_server_given_up", { ...this.#logFields, restarts: this.#restarts });
        return;
      case "later":
        return;
      case "wait": {
        await abortableDelay(decision.ms, signal);
        // Someone else restarted it meanwhile (or it was closed): join that, never a second restart.
        if (this.#state !== "exited") return this.start();
        // It crashed again meanwhile: that crash has a backoff of its own.
        if (this.#restarts !== crash.restarts) return this.#restartAfterCrash(0, signal);
        break;
      }
      case "now":
        break;
      default:
        return decision satisfies never;
    }
    this.#restarts++;
    await this.#launch();
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
    // is what the user asked for, and is rate-limited already). A local command that failed stays
    // failed. A server stopped while idle, or whose session was lost, starts again on use.
    if (this.#state === "stopped" || (this.#state === "failed" && this.#isRemote && !this.#needsAuth)) await this.start();
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
      const result = await this.#call(client, known, args, options);
      const outcome = result.ok ? result : { ...result, text: onePrefix(result.text) };
      // Signed in again (a step-up): the server no longer waits for the user.
      if (this.#needsAuth) {
        this.#needsAuth = false;
        this.#error = undefined;
        this.#changes.emit();
      }
      return outcome;
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
      const pages = urlElicitationsOf(error);
      if (pages) {
        // The server needs the user on a page first: shown like a URL elicitation, then the call once more.
        const urls = pages.map((page) => page.url).join(", ");
        if (!(await completeUrlElicitations(this.#askBack?.requests(), this.name, pages, signal)))
          return { ok: false, text: `Tool "${tool}" on MCP server "${this.name}" needs the user to open ${urls} first; they did not` };
        try {
          return await this.#call(client, known, args, options);
        } catch (retryError) {
          if (signal?.aborted) throw retryError;
          return { ok: false, text: `Tool "${tool}" on MCP server "${this.name}" failed after ${urls}: ${errorMessage(retryError)}` };
        }
      }
      if (error instanceof UnauthorizedError) {
        // A token that can no longer be refreshed, or a step-up to more scopes: the user signs in (again).
        this.#needsAuth = true;
        this.#error = this.#authMessage();
        this.#changes.emit();
        return { ok: false, text: this.#error };
      }
      const exited = this.#state === "exited" && this.#error ? ` (${this.#error})` : "";
      return { ok: false, text: `Tool "${tool}" on MCP server "${this.name}" failed: ${errorMessage(error)}${exited}` };
    }
  }

  #authMessage(): string {
    return `MCP server "${this.name}" needs your authorization: ${this.#authHint ?? "its credentials were refused"}`;
  }

  async #call(client: Client, tool: McpToolInfo, args: Record<string, unknown>, options: ConnectionCallOptions): Promise<ToolOutcome> {
    const { signal, onProgress, trace } = options;
    const meta = trace ? { ...options.meta, ...trace } : options.meta;
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

  /**
   * Stops the server to free its process while idle; the next start() brings it back. A crashed
   * or failed server has nothing to stop and keeps its state: an idle stop never resets the
   * restart count or its backoff.
   */
  async stop(): Promise<void> {
    if (this.#state === "closed" || this.#state === "stopped" || this.#state === "exited" || this.#state === "failed") return;
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
  await endRemoteSession(transport);
  await client?.close().catch(() => undefined);
  await transport?.close().catch(() => undefined);
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

function errorMessage(error: unknown): string {
  return errorText(error);
}

function describeStartError(error: unknown, name: string, url?: string): string {
  if (error instanceof Error && "code" in error && error.code === "ENOENT") {
    return `command not found (is it installed and on PATH?) for MCP server "${name}" (mcp.servers.${name}.command)`;
  }
  const message = errorText(error, url);
  // A remote server's failure names the server and its URL once.
  if (url !== undefined) {
    if (message.includes(`"${name}"`)) return message;
    return message.includes(url) ? `MCP server "${name}": ${message}` : `MCP server "${name}" at ${url}: ${message}`;
  }
  if (/Connection closed/i.test(message)) return `MCP server "${name}" exited during start-up (${message})`;
  return message;
}
