// Which MCP connections a user's hub gets: the shared in-process built-ins (one instance for every
// user, builtins.ts) and, for every other configured server, a connection of the user's own,
// rooted in the user's workspace folder, over the transport its entry names (transports.ts).
import { pathToFileURL } from "node:url";
import type { Config, McpServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { serverOwnFiles, type Workspaces } from "../workspace/workspaces.ts";
import { sharedBuiltins } from "./builtins.ts";
import { ChildLauncher } from "./child-launch.ts";
import type { ClientRequests } from "./client-requests.ts";
import { McpConnection, type ConnectionLimits } from "./connection.ts";
import { McpHub } from "./hub.ts";
import { transportFactory, type TransportContext } from "./transports.ts";
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

  /** `packageDirs`: folders where `npx -y <pkg>` packages are looked for locally. */
  constructor(config: Config, workspaces: Workspaces, log: Logger, packageDirs: string[], tracing?: Tracing) {
    this.#config = config;
    this.#workspaces = workspaces;
    const limits: ConnectionLimits = {
      maxToolResultChars: config.limits.max_tool_result_chars,
      maxToolImageBytes: config.limits.max_tool_image_bytes,
      maxRestarts: config.limits.mcp_max_restarts,
    };
    const ownFiles = serverOwnFiles(config);
    this.#shared = sharedBuiltins(config, ownFiles, log, limits);
    const launcher = new ChildLauncher(config, log, ownFiles);
    this.#context = { log, limits, packageDirs, configDir: config.configDir, launcher, tracing };
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
    const connections = Object.entries(this.#config.mcp.servers).map(
      ([name, entry]) =>
        this.#shared.get(name) ?? connectionFor(name, entry, workspaceDir, this.#context, fields, () => requests.current, userId),
    );
    return new McpHub(connections, { workspaceDir, owner: userId, requests });
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
): McpConnection {
  const owner = userId === undefined ? undefined : { userId, workspaceDir };
  return new McpConnection({
    name,
    transportName: entry.transport,
    shared: owner === undefined,
    makeTransport: transportFactory(name, entry, workspaceDir, context, logFields, owner),
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
