// The built-in MCP servers (fetch, filesystem): in-process, one instance shared by every session,
// so they cost nothing per user. Which config entries run them is decided here too.
import { existsSync } from "node:fs";
import path from "node:path";
import type { Config, McpServerConfig } from "../config.ts";
import { createFetchServer, fetchToolOptions } from "../fetch/fetch-tool.ts";
import type { WorkspaceQuota } from "../files/quota.ts";
import { createFilesystemServer } from "../filesystem/server.ts";
import type { Logger } from "../log.ts";
import { McpConnection, type ConnectionLimits } from "./connection.ts";
import { inProcessTransportFactory } from "./transports.ts";

/**
 * The shared built-in connections by server name: entries that say `builtin: filesystem` or
 * `builtin: fetch`, and the original's `uvx mcp-server-fetch` when uvx is not installed.
 * `ownFiles`: the server's files, which the built-in filesystem never serves.
 */
export function sharedBuiltins(
  config: Config,
  ownFiles: string[],
  log: Logger,
  limits: ConnectionLimits,
  quota?: WorkspaceQuota,
): Map<string, McpConnection> {
  const shared = new Map<string, McpConnection>();
  for (const [name, entry] of Object.entries(config.mcp.servers)) {
    if (entry.builtin === "filesystem") {
      shared.set(name, builtinFilesystemConnection(name, entry, ownFiles, log, limits, quota));
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
    shared.set(name, builtinFetchConnection(name, entry, log, limits));
  }
  return shared;
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
  return new McpConnection({
    name,
    transportName: "builtin",
    shared: true,
    allowedTools: entry.allowed_tools,
    // The fetch has its own deadline; the MCP call waits a little longer so that deadline's clear message wins.
    timeoutMs: Math.max(entry.read_timeout_seconds, entry.fetch_timeout_seconds + 5) * 1000,
    limits,
    log,
    makeTransport: inProcessTransportFactory(createFetchServer(fetchToolOptions(entry))),
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
  /** limits.workspace_bytes, shared with uploads: the built-in's writes reserve their bytes here. */
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
    makeTransport: inProcessTransportFactory(server),
  });
}
