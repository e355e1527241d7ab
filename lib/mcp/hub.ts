// One session's MCP servers: the hub owns the user's own connections (and only borrows shared
// ones such as the built-in fetch), starts them for a turn (ready), offers their tools to the
// model (catalog), routes the model's calls (callTool), stops them while idle (reapIfIdle) and
// closes them all. A connection's own life (restarts, reconnects) is in connection.ts.
import type { ToolCallOptions, ToolCatalog, ToolOutcome, ToolRoute, Toolbox } from "../agent/types.ts";
import { OWNER_META_KEY } from "../fetch/fetch-tool.ts";
import { WORKSPACE_META } from "../filesystem/server.ts";
import type { ServerInfo, ServerStatus } from "../protocol.ts";
import { ChangeListeners, serverStatus } from "./server-state.ts";
import type { ClientRequests } from "./client-requests.ts";
import type { McpConnection } from "./connection.ts";
import { buildToolCatalog } from "./tools.ts";

/** One session's MCP servers. */
export class McpHub implements Toolbox {
  #connections: McpConnection[];
  /** Connections still being read (the servers the user added, from the store): ready() waits for them. */
  #adopting: Promise<void> | undefined;
  readonly #changes = new ChangeListeners();
  readonly #unsubscribe = new Map<McpConnection, () => void>();
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
    for (const connection of connections)
      this.#unsubscribe.set(
        connection,
        connection.onChange(() => this.#changes.emit()),
      );
  }

  /** Calls `listener` after any of its servers changed (state, tools, error). */
  onChange(listener: () => void): () => void {
    return this.#changes.add(listener);
  }

  /** Connections that arrive later (the servers the user added, read from the store); ready() waits for them. */
  adopt(loading: Promise<McpConnection[]>): void {
    const adopting: Promise<void> = loading.then(
      (connections) => {
        for (const connection of connections) this.add(connection);
      },
      () => undefined,
    );
    this.#adopting = adopting;
    void adopting.finally(() => {
      if (this.#adopting === adopting) this.#adopting = undefined;
    });
  }

  /** A server of the user's own, added while the session runs; replaces one of the same name. */
  add(connection: McpConnection): void {
    void this.remove(connection.name);
    this.#connections = [...this.#connections, connection];
    this.#unsubscribe.set(
      connection,
      connection.onChange(() => this.#changes.emit()),
    );
    this.#ready = undefined;
    this.#changes.emit();
  }

  /** Removes and closes a server the user added; false when there is none of that name. */
  async remove(name: string): Promise<boolean> {
    const connection = this.#connections.find((candidate) => candidate.name === name && candidate.userAdded);
    if (!connection) return false;
    this.#connections = this.#connections.filter((candidate) => candidate !== connection);
    this.#unsubscribe.get(connection)?.();
    this.#unsubscribe.delete(connection);
    this.#ready = undefined;
    this.#changes.emit();
    await connection.close();
    return true;
  }

  /** Stops a server and starts it again (after its credentials changed); false when it has no server of that name. */
  restart(name: string): boolean {
    const connection = this.#connections.find((candidate) => candidate.name === name);
    if (!connection || connection.shared) return false;
    this.#ready = undefined;
    void connection.stop().then(() => connection.retry());
    return true;
  }

  /** Starts a failed server again (the page's Retry); false when it has no server of that name. */
  retry(name: string): boolean {
    const connection = this.#connections.find((candidate) => candidate.name === name);
    if (!connection) return false;
    this.#ready = undefined;
    void connection.retry();
    return true;
  }

  /** Where a connection added later reads the session's ClientRequests from. */
  get requests(): () => ClientRequests | undefined {
    return () => this.#requests.current;
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
  async ready(): Promise<void> {
    await this.#adopting;
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

  /** The `servers` frame's entries. */
  statuses(): ServerStatus[] {
    return this.#connections.map((connection) =>
      serverStatus(connection.info(), { needsAuth: connection.needsAuth, userAdded: connection.userAdded }),
    );
  }

  /** Closes every connection this hub owns; shared ones stay for the other sessions. */
  async close(): Promise<void> {
    for (const unsubscribe of this.#unsubscribe.values()) unsubscribe();
    this.#unsubscribe.clear();
    await Promise.all(this.#owned.map((connection) => connection.close()));
  }
}
