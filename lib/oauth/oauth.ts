// OAuth for remote MCP servers, per user: which servers use it, each user's provider for each
// server, the browser's return to GET /oauth/callback, "disconnect", and the client ID metadata
// document. The SDK's client auth does the protocol (lib/oauth/provider.ts keeps its state).
import { auth, UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { Config, McpServerConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { isRecord } from "../protocol.ts";
import type { SealedRecords } from "./records.ts";
import type { CrossAppAccessSettings } from "./cross-app-access.ts";
import { OPERATOR, parsePending, STATE_KIND, UserOAuthProvider, type OAuthSettings } from "./provider.ts";

export const CALLBACK_PATH = "/oauth/callback";
export const CLIENT_METADATA_PATH = "/oauth/client-metadata.json";

/** What a remote connection needs to authorize: the SDK transport's `authProvider` and `fetch`. */
export interface RemoteAuth {
  provider: UserOAuthProvider;
  fetch: FetchLike;
  /** For the user: where to go to authorize it. */
  hint: string;
}

export interface OAuthEvents {
  /** The user must open `url` to authorize `server` (auth_required to their tabs). */
  authRequired(userId: string, server: string, url: string): void;
  /** The user authorized `server`: its connection starts again (auth_completed to their tabs). */
  authCompleted(userId: string, server: string): void;
}

export type CallbackOutcome = { ok: true; userId: string; server: string } | { ok: false; status: number; error: string };

/** Whether a remote entry uses OAuth: unless it says `auth.oauth.enabled: false` or brings its own key or Authorization header. */
export function usesOAuth(entry: McpServerConfig): boolean {
  if (entry.transport !== "sse" && entry.transport !== "streamable_http") return false;
  if (entry.auth?.oauth) return entry.auth.oauth.enabled;
  if (entry.auth?.api_key) return false;
  return !Object.keys(entry.headers).some((header) => header.toLowerCase() === "authorization");
}

/** The headers of a remote entry: its own, plus `auth.api_key` as a bearer token. */
export function remoteHeaders(entry: McpServerConfig): Record<string, string> {
  return { ...entry.headers, ...(entry.auth?.api_key ? { Authorization: `Bearer ${entry.auth.api_key}` } : {}) };
}

export class OAuthManager {
  readonly #config: Config;
  readonly #records: SealedRecords;
  readonly #log: Logger;
  readonly #events: OAuthEvents;
  readonly #baseUrl: () => string;
  /** Finds the entry of a server of a user (the operator's, or one the user added). */
  readonly #entryFor: (userId: string, server: string) => Promise<McpServerConfig | undefined>;

  constructor(options: {
    config: Config;
    records: SealedRecords;
    log: Logger;
    events: OAuthEvents;
    /** This server's address as the browser reaches it, when server.public_url is not set (known at listen). */
    baseUrl: () => string;
    entryFor: (userId: string, server: string) => Promise<McpServerConfig | undefined>;
  }) {
    this.#config = options.config;
    this.#records = options.records;
    this.#log = options.log;
    this.#events = options.events;
    this.#baseUrl = options.baseUrl;
    this.#entryFor = options.entryFor;
  }

  get #publicBase(): string {
    const { oauth, server } = this.#config;
    return (oauth.callback_base_url ?? server.public_url ?? this.#baseUrl()).replace(/\/+$/, "");
  }

  get redirectUrl(): string {
    return `${this.#publicBase}${CALLBACK_PATH}`;
  }

  /** The client ID: oauth.client_metadata_url, else ours when server.public_url is https, else none (registration). */
  clientMetadataUrl(entry?: McpServerConfig): string | undefined {
    const own = entry?.auth?.oauth?.client_metadata_url ?? this.#config.oauth.client_metadata_url;
    if (own) return own;
    const publicUrl = this.#config.server.public_url;
    return publicUrl?.startsWith("https://") ? `${publicUrl.replace(/\/+$/, "")}${CLIENT_METADATA_PATH}` : undefined;
  }

  /** The document at CLIENT_METADATA_PATH; undefined when we are not our own client ID. */
  clientMetadataDocument(): Record<string, unknown> | undefined {
    const clientId = this.clientMetadataUrl();
    if (!clientId || this.#config.oauth.client_metadata_url) return undefined;
    return {
      client_id: clientId,
      client_name: this.#config.oauth.client_name,
      client_uri: this.#config.server.public_url,
      redirect_uris: [this.redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }

  /** A user's provider for one server; undefined when that server does not use OAuth. */
  remoteAuth(userId: string, server: string, entry: McpServerConfig): RemoteAuth | undefined {
    if (!usesOAuth(entry)) return undefined;
    const provider = this.#provider(userId, server, entry);
    return { provider, fetch: provider.fetch, hint: this.hint(server) };
  }

  /** What a user (a seed client too) reads to authorize a server. */
  hint(server: string): string {
    return `open ${this.#publicBase}/ and click "Connect ${server}" to sign in to it`;
  }

  #provider(userId: string, server: string, entry: McpServerConfig, verifier?: string): UserOAuthProvider {
    return new UserOAuthProvider({
      records: this.#records,
      userId,
      server,
      serverUrl: entry.url ?? "",
      settings: settingsOf(entry),
      redirectUrl: this.redirectUrl,
      clientMetadataUrl: this.clientMetadataUrl(entry),
      clientName: this.#config.oauth.client_name,
      flowMs: this.#config.oauth.flow_timeout_seconds * 1000,
      log: this.#log,
      onAuthorizationUrl: (url) => {
        this.#log.info("oauth_authorization_required", { user_id: userId, server });
        this.#events.authRequired(userId, server, url.href);
      },
      ...(verifier ? { verifier } : {}),
    });
  }

  /** GET /oauth/callback: the state is single-use, bound to the user who started, and expires. */
  async complete(query: URLSearchParams): Promise<CallbackOutcome> {
    const state = query.get("state");
    if (!state || state.length > 200) return { ok: false, status: 400, error: "the callback has no state: start again from the page" };
    const pending = parsePending(await this.#records.take(OPERATOR, STATE_KIND, state).catch(() => undefined));
    if (!pending) return { ok: false, status: 400, error: "this sign-in link was already used or is unknown: start again from the page" };
    if (pending.expiresAt < Date.now())
      return { ok: false, status: 400, error: `this sign-in took longer than oauth.flow_timeout_seconds: start again from the page` };
    const denied = query.get("error");
    if (denied) {
      const description = query.get("error_description");
      return {
        ok: false,
        status: 400,
        error: `the authorization server refused: ${denied}${description ? ` (${description.slice(0, 300)})` : ""}`,
      };
    }
    const code = query.get("code");
    if (!code) return { ok: false, status: 400, error: "the callback has no code" };
    const entry = await this.#entryFor(pending.userId, pending.server);
    if (!entry || entry.url !== pending.url)
      return { ok: false, status: 400, error: `MCP server "${pending.server}" is no longer configured` };
    const provider = this.#provider(pending.userId, pending.server, entry, pending.verifier);
    // RFC 9207: the issuer the browser came back from must be the one we sent it to.
    const discovery = await provider.discoveryState();
    const issuer = discovery?.authorizationServerMetadata?.issuer;
    const iss = query.get("iss");
    if (iss !== null && issuer !== undefined && iss !== issuer)
      return { ok: false, status: 400, error: `the authorization response came from ${iss}, not from ${issuer} (RFC 9207)` };
    const metadata: unknown = discovery?.authorizationServerMetadata;
    if (iss === null && isRecord(metadata) && metadata.authorization_response_iss_parameter_supported === true)
      return {
        ok: false,
        status: 400,
        error: `the authorization response lacks "iss" although ${issuer ?? "the server"} promises it (RFC 9207)`,
      };
    try {
      const result = await auth(provider, { serverUrl: pending.url, authorizationCode: code, fetchFn: provider.fetch });
      if (result !== "AUTHORIZED") return { ok: false, status: 502, error: "the authorization server did not issue a token" };
    } catch (error) {
      this.#log.warn("oauth_exchange_failed", { user_id: pending.userId, server: pending.server, error });
      const reason = error instanceof UnauthorizedError ? "it refused the code" : error instanceof Error ? error.message : String(error);
      return { ok: false, status: 502, error: `signing in to MCP server "${pending.server}" failed: ${reason}` };
    }
    this.#log.info("oauth_authorized", { user_id: pending.userId, server: pending.server });
    this.#events.authCompleted(pending.userId, pending.server);
    return { ok: true, userId: pending.userId, server: pending.server };
  }

  /** "Disconnect": forgets the user's tokens (and registration) for that server. */
  async disconnect(userId: string, server: string): Promise<void> {
    await this.#records.delete(userId, `oauth:${server}`);
  }
}

function crossAppAccessOf(
  settings: NonNullable<NonNullable<McpServerConfig["auth"]>["oauth"]>["cross_app_access"] & object,
): CrossAppAccessSettings {
  return {
    idp_client_id: settings.idp_client_id,
    id_token: settings.id_token,
    ...(settings.idp_token_endpoint ? { idp_token_endpoint: settings.idp_token_endpoint } : {}),
    ...(settings.idp_issuer ? { idp_issuer: settings.idp_issuer } : {}),
    ...(settings.idp_client_secret ? { idp_client_secret: settings.idp_client_secret } : {}),
  };
}

function settingsOf(entry: McpServerConfig): OAuthSettings {
  const oauth = entry.auth?.oauth;
  return {
    scopes: oauth?.scopes ?? [],
    grant: oauth?.grant ?? "authorization_code",
    ...(oauth?.resource ? { resource: oauth.resource } : {}),
    ...(oauth?.authorization_server ? { authorization_server: oauth.authorization_server } : {}),
    ...(oauth?.client_id ? { client_id: oauth.client_id } : {}),
    ...(oauth?.client_secret ? { client_secret: oauth.client_secret } : {}),
    ...(oauth?.private_key ? { private_key: oauth.private_key, signing_algorithm: oauth.signing_algorithm } : {}),
    ...(oauth?.access_token ? { access_token: oauth.access_token } : {}),
    ...(oauth?.refresh_token ? { refresh_token: oauth.refresh_token } : {}),
    ...(oauth?.cross_app_access ? { cross_app_access: crossAppAccessOf(oauth.cross_app_access) } : {}),
  };
}
