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
import { DEFAULT_MCP_BUDGETS, mcpFetch, type McpBudgets } from "./budgets.ts";
import { ProcessGroupStdioTransport, resolveLocalNpx } from "./stdio-transport.ts";
import type { ChildLauncher, ChildOwner } from "./child-launch.ts";
import { expandEntry, usesValue, type PerUserValues } from "./per-user-values.ts";
import type { StderrTail } from "./server-state.ts";
import type { RemoteAuth } from "../oauth/oauth.ts";

/** A remote server's extras: the user's OAuth, and for a server the user added, the address guard on every request. */
export interface RemoteOptions {
  auth?: RemoteAuth;
  guard?: (url: URL) => Promise<string | undefined>;
}

/** A transport; a stdio one also says its child's pid, and once it ended, why (a limit it hit, say). */
export type McpTransport = Transport & { pid?: number; exitReason?: string };

/** How to make a fresh transport each time the server (re)starts. */
export type TransportFactory = () => McpTransport;

/** What making a user's transports needs from the server. */
export interface TransportContext {
  log: Logger;
  /** Folders where `npx -y <pkg>` packages are looked for locally. */
  packageDirs: string[];
  /** The config file's folder: a relative `cwd` is relative to it. */
  configDir: string;
  /** Caps on what servers send (default: DEFAULT_MCP_BUDGETS). */
  budgets?: McpBudgets;
  /** Private folders, sandbox and limits of stdio children; absent: spawned as configured. */
  launcher?: ChildLauncher;
}

/** The transports that reach a server over the network: they may be down now and up later. */
export function isRemoteTransport(transportName: string): boolean {
  return transportName === "sse" || transportName === "streamable_http";
}

/**
 * The transport factory of one user's connection to a configured server (`owner` undefined: the
 * one connection of a `scope: shared` server). Per-user values are filled in here.
 */
export function transportFactory(
  name: string,
  entry: McpServerConfig,
  workspaceDir: string,
  context: TransportContext,
  logFields: Record<string, unknown>,
  owner?: ChildOwner,
  extra: { stderr?: StderrTail; remote?: RemoteOptions } = {},
): TransportFactory {
  const values = owner && context.launcher?.valuesFor(name, owner);
  const remote = expandEntry(entry, values);
  switch (entry.transport) {
    case "stdio":
      return stdioTransportFactory(name, entry, workspaceDir, context, logFields, owner, extra.stderr);
    case "sse": {
      const options = remoteOptions(name, entry, remote.headers, context.budgets ?? DEFAULT_MCP_BUDGETS, extra.remote);
      return () => new SSEClientTransport(remoteUrl(name, remote.url), options);
    }
    case "streamable_http": {
      const options = remoteOptions(name, entry, remote.headers, context.budgets ?? DEFAULT_MCP_BUDGETS, extra.remote);
      return () => new StreamableHTTPClientTransport(remoteUrl(name, remote.url), options);
    }
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
  owner?: ChildOwner,
  stderr?: StderrTail,
): TransportFactory {
  const values = owner && context.launcher?.valuesFor(name, owner);
  const params = stdioParamsFor(name, entry, workspaceDir, context.packageDirs, context.configDir, values);
  return () => {
    // The npm filesystem server needs its root to exist; made here, on its first start, not on connect.
    if (name === "filesystem" && entry.scope !== "shared") mkdirSync(workspaceDir, { recursive: true, mode: 0o700 });
    return new ProcessGroupStdioTransport({
      // Its private folders, working folder, sandbox and limits (child-launch.ts), at each start.
      ...(context.launcher ? context.launcher.launch(name, entry, params, owner) : params),
      limitsKey: `mcp.servers.${name}.limits`,
      names: { command: `mcp.servers.${name}.command`, cwd: `mcp.servers.${name}.cwd` },
      maxLineBytes: (context.budgets ?? DEFAULT_MCP_BUDGETS).maxMessageBytes,
      onStderrLine: (line) => {
        stderr?.push(line);
        context.log.debug("mcp_server_stderr", { ...logFields, server: name, line });
      },
    });
  };
}

/** Headers (with `auth.api_key`), the OAuth provider, and a fetch that passes the address guard first. */
function remoteOptions(
  name: string,
  entry: McpServerConfig,
  headers: Record<string, string>,
  budgets: McpBudgets,
  remote: RemoteOptions = {},
) {
  // What a server may send is capped below everything else (lib/mcp/budgets.ts), OAuth requests included.
  const authFetch = remote.auth?.fetch;
  // The SDK calls fetch with a URL; a Request is never passed on to its auth fetch.
  const baseFetch = mcpFetch(
    name,
    budgets,
    authFetch ? (input, init) => authFetch(input instanceof Request ? input.url : input, init) : fetch,
  );
  const guard = remote.guard;
  const guardedFetch: typeof baseFetch = guard
    ? async (input, init) => {
        const refused = await guard(new URL(input instanceof Request ? input.url : String(input)));
        if (refused) throw new Error(refused);
        return baseFetch(input, init);
      }
    : baseFetch;
  return {
    requestInit: { headers: { ...headers, ...(entry.auth?.api_key ? { Authorization: `Bearer ${entry.auth.api_key}` } : {}) } },
    ...(remote.auth ? { authProvider: remote.auth.provider } : {}),
    fetch: guardedFetch,
  };
}

/** A remote entry's URL; a missing or bad one names the key (the start fails with this message). */
function remoteUrl(name: string, url: string | undefined): URL {
  try {
    return new URL(url ?? "");
  } catch {
    throw new Error(`MCP server "${name}" has no valid URL: ${JSON.stringify(url ?? "")} (mcp.servers.${name}.url)`);
  }
}

/**
 * The spawn parameters of a stdio entry for one user (`values`: its per-user values; none for a
 * shared server). The server named `filesystem` gets the user's workspace appended unless it names
 * `{workspace}` itself; the config's own args array is never touched.
 */
export function stdioParamsFor(
  name: string,
  entry: McpServerConfig,
  workspaceDir: string,
  packageDirs: string[],
  configDir: string,
  values?: PerUserValues,
): { command: string; args: string[]; env: Record<string, string>; cwd?: string } {
  // The package look-up walks the file system: done once per entry, not once per session.
  const byDirs = resolvedCommands.get(entry) ?? new Map<string, { command: string; args: string[] }>();
  resolvedCommands.set(entry, byDirs);
  const dirsKey = packageDirs.join("\0");
  let resolved = byDirs.get(dirsKey);
  if (!resolved) {
    resolved = resolveLocalNpx(entry.command ?? "", entry.args, packageDirs);
    byDirs.set(dirsKey, resolved);
  }
  // The package look-up reads only the leading package name: the rest of the args are the user's own.
  const expanded = expandEntry(entry, values);
  const resolvedArgs =
    resolved.command === entry.command
      ? expanded.args
      : [...resolved.args.slice(0, 1), ...expanded.args.slice(expanded.args.length - resolved.args.length + 1)];
  const appendWorkspace = name === "filesystem" && entry.scope !== "shared" && !usesValue(entry, "workspace");
  const args = appendWorkspace ? [...resolvedArgs, workspaceDir] : [...resolvedArgs];
  const cwd = expanded.cwd === undefined ? undefined : path.resolve(configDir, expanded.cwd);
  return { command: resolved.command, args, env: expanded.env, ...(cwd === undefined ? {} : { cwd }) };
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
