// Remote MCP servers a user adds for themselves (mcp.user_servers): kept with the user in the
// store, sealed (their headers may hold keys); their URLs pass the fetch tool's address guard
// unless the operator allowed the host; names never shadow the operator's servers or built-ins.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Config, McpServerConfig } from "../config.ts";
import { mcpServerDefaults } from "../config.ts";
import { checkUrlTarget, classifyAddress, normaliseHost, parseAllowList, type AllowList } from "../fetch/address-guard.ts";
import { isRecord, type UserServerInput } from "../protocol.ts";
import type { SealedRecords } from "../oauth/records.ts";

const KIND = "user_servers";
/** Names a user's server may never take, besides the operator's: the built-ins. */
const RESERVED = new Set(["fetch", "filesystem"]);

export type UserServerRefusal = { ok: false; status: number; error: string };

/** A user's server as listed back: header names only, never their values. */
export interface UserServerView {
  name: string;
  url: string;
  transport: "streamable_http" | "sse";
  headers: string[];
}

export class UserServers {
  readonly #config: Config;
  readonly #records: SealedRecords;
  readonly #allow: AllowList;

  constructor(config: Config, records: SealedRecords) {
    this.#config = config;
    this.#records = records;
    this.#allow = parseAllowList(config.mcp.user_servers.allow_hosts);
  }

  get enabled(): boolean {
    return this.#config.mcp.user_servers.enabled;
  }

  async list(userId: string): Promise<UserServerView[]> {
    return (await this.#stored(userId)).map((server) => ({
      name: server.name,
      url: server.url,
      transport: server.transport,
      headers: Object.keys(server.headers ?? {}),
    }));
  }

  async add(userId: string, server: UserServerInput): Promise<{ ok: true } | UserServerRefusal> {
    if (!this.enabled) return { ok: false, status: 403, error: "adding MCP servers is turned off (mcp.user_servers.enabled)" };
    if (this.#config.mcp.servers[server.name] !== undefined || RESERVED.has(server.name))
      return { ok: false, status: 409, error: `"${server.name}" is the name of one of this server's own MCP servers: choose another` };
    const existing = await this.#stored(userId);
    const max = this.#config.limits.max_user_servers;
    if (!existing.some((known) => known.name === server.name) && existing.length >= max)
      return {
        ok: false,
        status: 409,
        error: `you have ${existing.length} MCP servers, the most allowed (limits.max_user_servers: ${max})`,
      };
    const refused = await this.check(new URL(server.url));
    if (refused) return { ok: false, status: 403, error: refused };
    await this.#records.set(userId, KIND, server.name, server);
    return { ok: true };
  }

  /** False when the user had no server of that name. */
  async remove(userId: string, name: string): Promise<boolean> {
    const had = (await this.#stored(userId)).some((server) => server.name === name);
    if (had) await this.#records.delete(userId, KIND, name);
    return had;
  }

  /** The user's servers as config entries (remote, the defaults of any entry). */
  async entries(userId: string): Promise<[string, McpServerConfig][]> {
    if (!this.enabled) return [];
    return (await this.#stored(userId)).map((server) => [server.name, entryOf(server)]);
  }

  async entry(userId: string, name: string): Promise<McpServerConfig | undefined> {
    return (await this.entries(userId)).find(([known]) => known === name)?.[1];
  }

  /**
   * Why a user's server may not be reached at this URL (loopback, private, link-local, metadata
   * addresses), or undefined. Checked when it is added and before every request to it (its
   * OAuth discovery and token requests too), on every address its name resolves to.
   */
  async check(url: URL): Promise<string | undefined> {
    const hint = "mcp.user_servers.allow_hosts";
    const literal = checkUrlTarget(url, this.#allow);
    if (literal) return literal.replace(/allow_hosts of the fetch server in mcp_agent\.config\.yaml/, hint);
    const host = normaliseHost(url.hostname);
    if (isIP(host) !== 0 || this.#allow.hosts.has(host)) return undefined;
    let addresses: { address: string }[];
    try {
      addresses = await lookup(host, { all: true });
    } catch (error) {
      return `cannot resolve ${host}: ${(error as Error).message}`;
    }
    for (const { address } of addresses) {
      if (
        this.#allow.cidrs.length > 0 &&
        checkUrlTarget(new URL(`http://${address.includes(":") ? `[${address}]` : address}/`), this.#allow) === null
      )
        continue;
      const reason = classifyAddress(address);
      if (reason !== null)
        return `Refused to reach ${url.href}: ${host} resolves to ${address}, which is ${reason}. An operator can allow it in ${hint}`;
    }
    return undefined;
  }

  async #stored(userId: string): Promise<UserServerInput[]> {
    const rows = await this.#records.list(userId, KIND);
    return rows.flatMap((row) => {
      const server = parseStored(row.value);
      return server ? [server] : [];
    });
  }
}

function entryOf(server: UserServerInput): McpServerConfig {
  return { ...mcpServerDefaults(), transport: server.transport, url: server.url, headers: { ...server.headers } };
}

function parseStored(value: unknown): UserServerInput | undefined {
  if (!isRecord(value) || typeof value.name !== "string" || typeof value.url !== "string") return undefined;
  if (value.transport !== "streamable_http" && value.transport !== "sse") return undefined;
  const headers: Record<string, string> = {};
  if (isRecord(value.headers))
    for (const [key, header] of Object.entries(value.headers)) if (typeof header === "string") headers[key] = header;
  return { name: value.name, url: value.url, transport: value.transport, headers };
}
