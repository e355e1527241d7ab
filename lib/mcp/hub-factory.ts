// Which MCP connections a user's hub gets: the shared in-process built-ins (one instance for every
// user, builtins.ts) and, for every other configured server, a connection of the user's own,
// rooted in the user's workspace folder, over the transport its entry names (transports.ts).
import { pathToFileURL } from "node:url";
import type { Config, McpServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { noMetrics, type MetricsRecorder } from "../metrics/metrics.ts";
import type { McpBudgets } from "./budgets.ts";
import { serverOwnFiles, type Workspaces } from "../workspace/workspaces.ts";
import { sharedBuiltins } from "./builtins.ts";
import { ChildLauncher } from "./child-launch.ts";
import type { ClientRequests } from "./client-requests.ts";
import { McpConnection, type ConnectionLimits } from "./connection.ts";
import { McpHub } from "./hub.ts";
import { transportFactory, type RemoteOptions, type TransportContext } from "./transports.ts";
import { StderrTail } from "./server-state.ts";
import type { OAuthManager } from "../oauth/oauth.ts";
import type { UserServers } from "./user-servers.ts";
import type { Tracing } from "../telemetry/tracer.ts";

/** Everything needed to build a user's own connections. */
export interface HubContext extends TransportContext {
  limits: ConnectionLimits;
  /** Spans for each server's start (none when tracing is off). */
  tracing?: Tracing | undefined;
}

export class HubFactory {
  readonly #config: Config;
  readonly #workspaces: Workspaces;
  readonly #context: HubContext;
  readonly #shared: Map<string, McpConnection>;
  readonly #oauth: OAuthManager | undefined;
  readonly #userServers: UserServers | undefined;

  /** `packageDirs`: folders where `npx -y <pkg>` packages are looked for locally. */
  constructor(
    config: Config,
    workspaces: Workspaces,
    log: Logger,
    packageDirs: string[],
    extra: { oauth?: OAuthManager; userServers?: UserServers; metrics?: MetricsRecorder; tracing?: Tracing | undefined } = {},
  ) {
    this.#config = config;
    this.#oauth = extra.oauth;
    this.#userServers = extra.userServers;
    this.#workspaces = workspaces;
    const budgets: McpBudgets = {
      maxMessageBytes: config.limits.mcp_max_message_bytes,
      notificationsPerSecond: config.limits.mcp_notifications_per_second,
      notificationBurst: config.limits.mcp_notification_burst,
      maxLogChars: config.limits.mcp_max_log_chars,
      onDropped: (_server, reason) => (extra.metrics ?? noMetrics).mcpDropped(reason),
    };
    const limits: ConnectionLimits = {
      maxToolResultChars: config.limits.max_tool_result_chars,
      maxToolImageBytes: config.limits.max_tool_image_bytes,
      maxRestarts: config.limits.mcp_max_restarts,
      budgets,
    };
    const ownFiles = serverOwnFiles(config);
    this.#shared = sharedBuiltins(config, ownFiles, log, limits, workspaces.quota);
    const launcher = new ChildLauncher(config, log, ownFiles);
    this.#context = { log, limits, packageDirs, configDir: config.configDir, launcher, budgets, tracing: extra.tracing };
    // `scope: shared`: one process (or connection) for every user, with no per-user values.
    for (const [name, entry] of Object.entries(config.mcp.servers)) {
      if (entry.scope === "shared" && !this.#shared.has(name)) {
        this.#shared.set(
          name,
          connectionFor(name, entry, "", this.#context, { scope: "shared" }, () => undefined, undefined),
        );
      }
    }
    launcher.checkSupport();
  }

  /** A new session's hub: its own connections, plus the shared ones it only borrows. */
  create(userId: string, sessionId: string): McpHub {
    // Not created here: the built-in filesystem makes it on the first write, a child server just before it starts.
    const workspaceDir = this.#workspaces.dirFor(userId);
    const fields = { user_id: userId, session_id: sessionId };
    // Filled by the session (McpHub.attach): servers' sampling and elicitation requests go there.
    const requests: { current?: ClientRequests } = {};
    const connections = Object.entries(this.#config.mcp.servers).map(([name, entry]) => {
      const shared = this.#shared.get(name);
      if (shared) return shared;
      const auth = this.#oauth?.remoteAuth(userId, name, entry);
      return connectionFor(name, entry, workspaceDir, this.#context, fields, () => requests.current, userId, auth ? { auth } : {});
    });
    const hub = new McpHub(connections, { workspaceDir, owner: userId, requests });
    const userServers = this.#userServers;
    if (userServers?.enabled)
      hub.adopt(
        userServers
          .entries(userId)
          .then((entries) => entries.map(([name, entry]) => this.userConnection(userId, sessionId, name, entry, hub))),
      );
    return hub;
  }

  /** A connection to a server the user added: remote, address-guarded, with the user's own OAuth. */
  userConnection(userId: string, sessionId: string, name: string, entry: McpServerConfig, hub: McpHub): McpConnection {
    const userServers = this.#userServers;
    const guard = userServers ? (url: URL) => userServers.check(url) : undefined;
    const auth = this.#oauth?.remoteAuth(userId, name, entry);
    return connectionFor(
      name,
      entry,
      this.#workspaces.dirFor(userId),
      this.#context,
      { user_id: userId, session_id: sessionId },
      hub.requests,
      userId,
      { ...(auth ? { auth } : {}), ...(guard ? { guard } : {}) },
      true,
    );
  }

  /** Starts the shared built-ins (at listen), so the first user does not wait for them. */
  startShared(): void {
    for (const connection of this.#shared.values()) void connection.start();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#shared.values()].map((connection) => connection.close()));
  }
}

/**
 * A connection of one user's own to a configured server: it may ask that user back (roots,
 * sampling, elicitation). `userId` undefined: the one connection of a `scope: shared` server,
 * which asks no one.
 */
export function connectionFor(
  name: string,
  entry: McpServerConfig,
  workspaceDir: string,
  context: HubContext,
  logFields: Record<string, unknown>,
  requests: () => ClientRequests | undefined = () => undefined,
  userId?: string,
  remote: RemoteOptions = {},
  userAdded = false,
): McpConnection {
  const owner = userId === undefined ? undefined : { userId, workspaceDir };
  const stderr = entry.transport === "stdio" ? new StderrTail() : undefined;
  const isRemote = entry.transport === "sse" || entry.transport === "streamable_http";
  return new McpConnection({
    name,
    transportName: entry.transport,
    shared: owner === undefined,
    makeTransport: transportFactory(name, entry, workspaceDir, context, logFields, owner, { ...(stderr ? { stderr } : {}), remote }),
    ...(stderr ? { stderr } : {}),
    ...(remote.auth ? { authHint: remote.auth.hint } : {}),
    ...(isRemote ? { url: entry.url ?? "" } : {}),
    ...(userAdded ? { userAdded } : {}),
    allowedTools: entry.allowed_tools,
    timeoutMs: entry.read_timeout_seconds * 1000,
    maxCallMs: entry.max_call_seconds * 1000,
    limits: context.limits,
    log: context.log,
    logFields,
    tracing: context.tracing,
    ...(owner
      ? { askBack: { roots: [{ uri: pathToFileURL(workspaceDir).href, name: "workspace" }], sampling: entry.sampling, requests } }
      : {}),
  });
}
