// One session's MCP servers: the hub owns the user's own connections (and only borrows shared
// ones such as the built-in fetch), starts them for a turn (ready), offers their tools to the
// model (catalog), routes the model's calls (callTool), stops them while idle (reapIfIdle) and
// closes them all. A connection's own life (restarts, reconnects) is in connection.ts.
import type { ToolCallOptions, ToolCatalog, ToolOutcome, ToolRoute, Toolbox } from "../agent/types.ts";
import { OWNER_META_KEY } from "../fetch/fetch-tool.ts";
import { WORKSPACE_META } from "../filesystem/server.ts";
import type { ServerInfo } from "../protocol.ts";
import type { ClientRequests } from "./client-requests.ts";
import type { McpConnection } from "./connection.ts";
import { buildToolCatalog } from "./tools.ts";

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
    // Only our own in-process servers: a `scope: shared` child is not told who is calling.
    if (connection.shared && connection.transportName === "builtin" && this.#owner !== undefined) meta[OWNER_META_KEY] = this.#owner;
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
