// Which transport a configured MCP server gets (stdio, sse, streamable_http, websocket, or
// in-process for the built-ins), made fresh at each (re)start, and what a transport's errors mean.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import { SSEClientTransport, SseError } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport, StreamableHTTPError } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { McpServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { ProcessGroupStdioTransport, resolveLocalNpx, type StdioParams } from "./stdio-transport.ts";

/** A transport; a stdio one also says its child's pid. */
export type McpTransport = Transport & { pid?: number };

/** How to make a fresh transport each time the server (re)starts. */
export type TransportFactory = () => McpTransport;

/** What making a user's transports needs from the server. */
export interface TransportContext {
  log: Logger;
  /** Folders where `npx -y <pkg>` packages are looked for locally. */
  packageDirs: string[];
  /** The config file's folder: a relative `cwd` is relative to it. */
  configDir: string;
}

/** The transports that reach a server over the network: they may be down now and up later. */
export function isRemoteTransport(transportName: string): boolean {
  return transportName === "sse" || transportName === "streamable_http";
}

/** The transport factory of one user's connection to a configured server. */
export function transportFactory(
  name: string,
  entry: McpServerConfig,
  workspaceDir: string,
  context: TransportContext,
  logFields: Record<string, unknown>,
): TransportFactory {
  switch (entry.transport) {
    case "stdio":
      return stdioTransportFactory(name, entry, workspaceDir, context, logFields);
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
}

/**
 * The one place a user's stdio child is spawned from: the config entry becomes spawn parameters
 * (once), and each (re)start spawns a new child that leads its own process group.
 */
export function stdioTransportFactory(
  name: string,
  entry: McpServerConfig,
  workspaceDir: string,
  context: TransportContext,
  logFields: Record<string, unknown>,
): TransportFactory {
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

/**
 * The spawn parameters of a stdio entry for one user. The server named `filesystem` gets the
 * user's workspace appended; the config's own args array is never touched.
 */
export function stdioParamsFor(
  name: string,
  entry: McpServerConfig,
  workspaceDir: string,
  packageDirs: string[],
  configDir: string,
): Omit<StdioParams, "names" | "onStderrLine" | "gracefulCloseMs"> {
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

/** An in-process server (a built-in): each start links a fresh pair of in-memory transports to it. */
export function inProcessTransportFactory(server: McpServer): TransportFactory {
  return () => {
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    void server.close().then(() => server.connect(serverSide));
    return clientSide;
  };
}

/** Before closing: a streamable HTTP session is ended with DELETE, so the server frees it. */
export async function endRemoteSession(transport: Transport | undefined): Promise<void> {
  if (transport instanceof StreamableHTTPClientTransport && transport.sessionId) {
    await transport.terminateSession().catch(() => undefined);
  }
}

/**
 * An SSE server that restarts forgets our session but answers nothing to a POST for it: the
 * broken event stream is the only sign.
 */
export function isStreamBroken(error: unknown): boolean {
  return error instanceof SseError;
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
  const message = error instanceof Error ? error.message : String(error);
  return /\b(?:404|400)\b.*session|session (?:not found|unknown|expired)|no valid session/i.test(message);
}
