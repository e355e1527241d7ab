// Which MCP connections a user's hub gets: the shared in-process built-ins (one instance for every
// user) and, for every other configured server, a connection of the user's own, rooted in the
// user's workspace folder.
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { serverOwnFiles, type Workspaces } from "../workspace/workspaces.ts";
import type { ClientRequests } from "./client-requests.ts";
import {
  builtinFetchConnection,
  builtinFilesystemConnection,
  commandExists,
  connectionFor,
  McpHub,
  usesBuiltinFetch,
  type ConnectionLimits,
  type HubContext,
  type McpConnection,
} from "./hub.ts";

export class HubFactory {
  readonly #config: Config;
  readonly #workspaces: Workspaces;
  readonly #context: HubContext;
  readonly #shared = new Map<string, McpConnection>();

  /** `packageDirs`: folders where `npx -y <pkg>` packages are looked for locally. */
  constructor(config: Config, workspaces: Workspaces, log: Logger, packageDirs: string[]) {
    this.#config = config;
    this.#workspaces = workspaces;
    const limits: ConnectionLimits = {
      maxToolResultChars: config.limits.max_tool_result_chars,
      maxToolImageBytes: config.limits.max_tool_image_bytes,
      maxRestarts: config.limits.mcp_max_restarts,
    };
    const ownFiles = serverOwnFiles(config);
    for (const [name, entry] of Object.entries(config.mcp.servers)) {
      if (entry.builtin === "filesystem") {
        this.#shared.set(name, builtinFilesystemConnection(name, entry, ownFiles, log, limits, workspaces.quota));
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
      this.#shared.set(name, builtinFetchConnection(name, entry, log, limits));
    }
    this.#context = { log, limits, packageDirs, shared: this.#shared, configDir: config.configDir };
  }

  /** A new session's hub: its own connections, plus the shared ones it only borrows. */
  create(userId: string, sessionId: string): McpHub {
    // Not created here: the built-in filesystem makes it on the first write, a child server just before it starts.
    const workspaceDir = this.#workspaces.dirFor(userId);
    const fields = { user_id: userId, session_id: sessionId };
    // Filled by the session (McpHub.attach): servers' sampling and elicitation requests go there.
    const requests: { current?: ClientRequests } = {};
    const connections = Object.entries(this.#config.mcp.servers).map(
      ([name, entry]) => this.#shared.get(name) ?? connectionFor(name, entry, workspaceDir, this.#context, fields, () => requests.current),
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
