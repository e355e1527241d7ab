// One user's OAuth client for one remote MCP server: the SDK's OAuthClientProvider over sealed
// records in the store. The SDK does discovery (WWW-Authenticate, RFC 9728, RFC 8414 / OpenID),
// registration (client ID metadata document or RFC 7591), PKCE, the resource indicator and
// step-up; this keeps what it learns per user and server, and makes every refresh single.
import { createHash, randomBytes } from "node:crypto";
import {
  refreshAuthorization,
  type AddClientAuthentication,
  type OAuthClientProvider,
  type OAuthDiscoveryState,
} from "@modelcontextprotocol/sdk/client/auth.js";
import { createPrivateKeyJwtAuth } from "@modelcontextprotocol/sdk/client/auth-extensions.js";
import {
  OAuthClientInformationFullSchema,
  OAuthClientInformationSchema,
  OAuthMetadataSchema,
  OAuthProtectedResourceMetadataSchema,
  OAuthTokensSchema,
  OpenIdProviderDiscoveryMetadataSchema,
  type OAuthClientInformationMixed,
  type OAuthClientMetadata,
  type OAuthTokens,
} from "@modelcontextprotocol/sdk/shared/auth.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import { isRecord } from "../protocol.ts";
import type { Logger } from "../log.ts";
import type { SealedRecords } from "./records.ts";
import { JWT_BEARER_GRANT, jwtBearerRequest, requestIdJag, type CrossAppAccessSettings } from "./cross-app-access.ts";

/** A server's `auth.oauth` settings as this client uses them. */
export interface OAuthSettings {
  scopes: string[];
  resource?: string;
  authorization_server?: string;
  client_id?: string;
  client_secret?: string;
  private_key?: string;
  signing_algorithm?: string;
  access_token?: string;
  refresh_token?: string;
  grant: "authorization_code" | "client_credentials" | "cross_app_access";
  /** With grant cross_app_access: the enterprise IdP and the user's ID token there (SEP-990). */
  cross_app_access?: CrossAppAccessSettings;
}

/** Tokens as stored: the SDK's, plus when they expire (epoch ms) and which refresh token made them. */
interface StoredTokens {
  tokens: OAuthTokens;
  expiresAt?: number;
}

/** The single-use record behind an authorization URL's `state`. */
export interface PendingAuthorization {
  userId: string;
  server: string;
  url: string;
  expiresAt: number;
  verifier: string;
}

/** Tokens are refreshed when they expire within this: before any request fails with 401. */
const REFRESH_AHEAD_MS = 60_000;
/** A refresh in flight on another instance is waited for at most this long. */
const REFRESH_LOCK_MS = 30_000;
export const STATE_KIND = "oauth_state";
/** This process's refreshes in flight, by owner, server and refresh token: one per instance. */
const PROCESS_REFRESHES = new Map<string, Promise<{ status: number; body: string }>>();
/** The owner of tokens that serve every user (client credentials): no user id is empty. */
export const OPERATOR = "";

export interface ProviderOptions {
  records: SealedRecords;
  userId: string;
  server: string;
  serverUrl: string;
  settings: OAuthSettings;
  redirectUrl: string;
  clientMetadataUrl: string | undefined;
  clientName: string;
  flowMs: number;
  log: Logger;
  /** The user must open this URL (auth_required); called once per authorization started. */
  onAuthorizationUrl(url: URL): void;
  /** Refreshes in flight on this instance; default: the process's (tests give each "instance" its own). */
  inflight?: Map<string, Promise<{ status: number; body: string }>>;
  /** Set when completing an authorization: the PKCE verifier its state was created with. */
  verifier?: string;
  now?: () => number;
}

export class UserOAuthProvider implements OAuthClientProvider {
  readonly #options: ProviderOptions;
  readonly #kind: string;
  readonly #owner: string;
  #state: string | undefined;
  readonly #inflight: Map<string, Promise<{ status: number; body: string }>>;

  constructor(options: ProviderOptions) {
    this.#options = options;
    this.#kind = `oauth:${options.server}`;
    this.#inflight = options.inflight ?? PROCESS_REFRESHES;
    this.#owner = options.settings.grant === "client_credentials" ? OPERATOR : options.userId;
    if (options.clientMetadataUrl) this.clientMetadataUrl = options.clientMetadataUrl;
    const { private_key, client_id, signing_algorithm } = options.settings;
    if (private_key && client_id)
      this.addClientAuthentication = createPrivateKeyJwtAuth({
        issuer: client_id,
        subject: client_id,
        privateKey: private_key,
        alg: signing_algorithm ?? "RS256",
      });
    const resource = options.settings.resource;
    if (resource) this.validateResourceURL = () => Promise.resolve(new URL(resource));
  }

  clientMetadataUrl?: string;

  get #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  /** No browser for the grants without a user at the authorization server (the SDK then calls prepareTokenRequest). */
  get redirectUrl(): string | undefined {
    return this.#options.settings.grant === "authorization_code" ? this.#options.redirectUrl : undefined;
  }

  get clientMetadata(): OAuthClientMetadata {
    const { settings, clientName } = this.#options;
    const credentials = settings.grant !== "authorization_code";
    const grants = {
      authorization_code: ["authorization_code", "refresh_token"],
      client_credentials: ["client_credentials"],
      cross_app_access: [JWT_BEARER_GRANT],
    };
    return {
      client_name: clientName,
      redirect_uris: credentials ? [] : [this.#options.redirectUrl],
      grant_types: grants[settings.grant],
      response_types: credentials ? [] : ["code"],
      token_endpoint_auth_method: settings.private_key ? "private_key_jwt" : settings.client_secret ? "client_secret_basic" : "none",
      ...(settings.scopes.length > 0 ? { scope: settings.scopes.join(" ") } : {}),
    };
  }

  /** With `auth.oauth.private_key`: a signed JWT instead of a client secret (RFC 7523). */
  addClientAuthentication?: AddClientAuthentication;

  /** `auth.oauth.resource` when the operator names it, else the SDK's choice (the resource metadata's, checked against the URL). */
  validateResourceURL?: (serverUrl: string | URL, resource?: string) => Promise<URL | undefined>;

  state(): string {
    this.#state = randomBytes(24).toString("base64url");
    return this.#state;
  }

  async clientInformation(): Promise<OAuthClientInformationMixed | undefined> {
    const { client_id, client_secret } = this.#options.settings;
    if (client_id) return { client_id, ...(client_secret ? { client_secret } : {}) };
    const value = await this.#options.records.get(this.#owner, this.#kind, "client");
    // A registration (full), or a URL client ID (the metadata document's URL and the issuer it is for); kept with its issuer.
    const full = OAuthClientInformationFullSchema.loose().safeParse(value);
    if (full.success) return full.data;
    const plain = OAuthClientInformationSchema.loose().safeParse(value);
    return plain.success ? plain.data : undefined;
  }

  async saveClientInformation(information: OAuthClientInformationMixed): Promise<void> {
    await this.#options.records.set(this.#owner, this.#kind, "client", information);
  }

  async tokens(): Promise<OAuthTokens | undefined> {
    const stored = await this.#stored();
    if (!stored) {
      const { access_token, refresh_token } = this.#options.settings;
      return access_token ? { access_token, token_type: "Bearer", ...(refresh_token ? { refresh_token } : {}) } : undefined;
    }
    if (stored.expiresAt !== undefined && stored.expiresAt - this.#now < REFRESH_AHEAD_MS && stored.tokens.refresh_token) {
      return (await this.#refreshAhead(stored.tokens.refresh_token)) ?? stored.tokens;
    }
    return stored.tokens;
  }

  async saveTokens(tokens: OAuthTokens): Promise<void> {
    const record: StoredTokens = {
      tokens,
      ...(tokens.expires_in !== undefined ? { expiresAt: this.#now + tokens.expires_in * 1000 } : {}),
    };
    await this.#options.records.set(this.#owner, this.#kind, "tokens", record);
  }

  redirectToAuthorization(authorizationUrl: URL): void {
    this.#options.onAuthorizationUrl(authorizationUrl);
  }

  async saveCodeVerifier(codeVerifier: string): Promise<void> {
    const state = this.#state;
    if (!state) throw new Error("an authorization started without a state");
    const pending: PendingAuthorization = {
      userId: this.#options.userId,
      server: this.#options.server,
      url: this.#options.serverUrl,
      expiresAt: this.#now + this.#options.flowMs,
      verifier: codeVerifier,
    };
    await this.#options.records.set(OPERATOR, STATE_KIND, state, pending);
  }

  codeVerifier(): string {
    if (!this.#options.verifier) throw new Error("no authorization of this server is waiting to be completed");
    return this.#options.verifier;
  }

  async prepareTokenRequest(scope?: string): Promise<URLSearchParams | undefined> {
    const { grant, cross_app_access } = this.#options.settings;
    if (grant === "client_credentials") return new URLSearchParams({ grant_type: "client_credentials", ...(scope ? { scope } : {}) });
    if (grant !== "cross_app_access" || !cross_app_access) return undefined;
    // The SDK has saved what discovery found: the ID-JAG is for that authorization server and this resource.
    const discovery = await this.discoveryState();
    if (!discovery) throw new Error(`MCP server "${this.#options.server}": no authorization server was discovered for the ID-JAG`);
    const audience = discovery.authorizationServerMetadata?.issuer ?? discovery.authorizationServerUrl;
    const resource = this.#options.settings.resource ?? discovery.resourceMetadata?.resource ?? this.#options.serverUrl;
    const assertion = await requestIdJag(cross_app_access, { audience, resource, ...(scope ? { scope } : {}) }, this.fetch);
    return jwtBearerRequest(assertion, scope);
  }

  async invalidateCredentials(scope: "all" | "client" | "tokens" | "verifier" | "discovery"): Promise<void> {
    const { records } = this.#options;
    const names = scope === "all" ? ["tokens", "client", "discovery"] : scope === "verifier" ? [] : [scope];
    for (const name of names) await records.delete(this.#owner, this.#kind, name);
  }

  async saveDiscoveryState(state: OAuthDiscoveryState): Promise<void> {
    await this.#options.records.set(this.#owner, this.#kind, "discovery", state);
  }

  async discoveryState(): Promise<OAuthDiscoveryState | undefined> {
    const parsed = parseDiscovery(await this.#options.records.get(this.#owner, this.#kind, "discovery"));
    if (parsed) return parsed;
    const configured = this.#options.settings.authorization_server;
    return configured ? { authorizationServerUrl: configured } : undefined;
  }

  /** The user's tokens for this server: forgotten ("disconnect"). */
  async forget(): Promise<void> {
    await this.#options.records.delete(this.#owner, this.#kind);
  }

  async #stored(): Promise<StoredTokens | undefined> {
    const value = await this.#options.records.get(this.#owner, this.#kind, "tokens");
    if (!isRecord(value)) return undefined;
    const tokens = OAuthTokensSchema.safeParse(value.tokens);
    if (!tokens.success) return undefined;
    return { tokens: tokens.data, ...(typeof value.expiresAt === "number" ? { expiresAt: value.expiresAt } : {}) };
  }

  /** Refreshes tokens that are about to expire; undefined when that is not possible now (the SDK's 401 handling takes over). */
  async #refreshAhead(refreshToken: string): Promise<OAuthTokens | undefined> {
    const discovery = await this.discoveryState();
    const information = await this.clientInformation();
    if (!discovery || !information) return undefined;
    try {
      const resource = discovery.resourceMetadata?.resource ?? this.#options.settings.resource;
      const tokens = await refreshAuthorization(discovery.authorizationServerUrl, {
        metadata: discovery.authorizationServerMetadata,
        clientInformation: information,
        refreshToken,
        ...(resource ? { resource: new URL(resource) } : {}),
        fetchFn: this.fetch,
      });
      await this.saveTokens(tokens);
      return tokens;
    } catch (error) {
      this.#options.log.warn("oauth_refresh_failed", { user_id: this.#options.userId, server: this.#options.server, error });
      // The refresh token is spent or refused: the user signs in again instead of every call failing.
      await this.#options.records.delete(this.#owner, this.#kind, "tokens");
      return undefined;
    }
  }

  /**
   * The fetch of the transport and of every OAuth request: a refresh-token grant runs once per
   * refresh token across the cluster (a lock in the store); whoever comes second gets the first
   * one's answer, so a refresh token is never presented twice.
   */
  readonly fetch: FetchLike = async (input, init) => {
    const body = init?.body;
    const refreshToken = body instanceof URLSearchParams && body.get("grant_type") === "refresh_token" ? body.get("refresh_token") : null;
    if (!refreshToken || init?.method !== "POST") return fetch(input, init);
    const key = `${this.#owner}\n${this.#options.server}\n${createHash("sha256").update(refreshToken).digest("base64url")}`;
    let running = this.#inflight.get(key);
    if (!running) {
      running = this.#refreshOnce(key, input, init).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, running);
    }
    const { status, body: text } = await running;
    return new Response(text, { status, headers: { "content-type": "application/json" } });
  };

  async #refreshOnce(key: string, input: string | URL, init: RequestInit): Promise<{ status: number; body: string }> {
    const { records } = this.#options;
    const store = records.store;
    const lockName = `oauth:${this.#owner}:${this.#options.server}`;
    const answerName = `refreshed:${createHash("sha256").update(key).digest("base64url")}`;
    const deadline = this.#now + REFRESH_LOCK_MS;
    for (;;) {
      const done = await records.get(this.#owner, this.#kind, answerName);
      if (isRecord(done) && typeof done.status === "number" && typeof done.body === "string")
        return { status: done.status, body: done.body };
      const token = await store.lock(lockName, REFRESH_LOCK_MS);
      if (token) {
        try {
          const again = await records.get(this.#owner, this.#kind, answerName);
          if (isRecord(again) && typeof again.status === "number" && typeof again.body === "string")
            return { status: again.status, body: again.body };
          const response = await fetch(input, init);
          const answer = { status: response.status, body: await response.text() };
          // Kept for whoever presents the same refresh token next (another instance, a second call).
          await records.set(this.#owner, this.#kind, answerName, answer);
          return answer;
        } finally {
          await store.unlock(lockName, token);
        }
      }
      if (this.#now > deadline) return { status: 503, body: JSON.stringify({ error: "temporarily_unavailable" }) };
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function parseDiscovery(value: unknown): OAuthDiscoveryState | undefined {
  if (!isRecord(value) || typeof value.authorizationServerUrl !== "string") return undefined;
  const metadata = OAuthMetadataSchema.safeParse(value.authorizationServerMetadata);
  const openId = metadata.success ? undefined : OpenIdProviderDiscoveryMetadataSchema.safeParse(value.authorizationServerMetadata);
  const resource = OAuthProtectedResourceMetadataSchema.safeParse(value.resourceMetadata);
  return {
    authorizationServerUrl: value.authorizationServerUrl,
    ...(typeof value.resourceMetadataUrl === "string" ? { resourceMetadataUrl: value.resourceMetadataUrl } : {}),
    ...(metadata.success
      ? { authorizationServerMetadata: metadata.data }
      : openId?.success
        ? { authorizationServerMetadata: openId.data }
        : {}),
    ...(resource.success ? { resourceMetadata: resource.data } : {}),
  };
}

export function parsePending(value: unknown): PendingAuthorization | undefined {
  if (!isRecord(value)) return undefined;
  const { userId, server, url, expiresAt, verifier } = value;
  if (typeof userId !== "string" || typeof server !== "string" || typeof url !== "string") return undefined;
  if (typeof expiresAt !== "number" || typeof verifier !== "string") return undefined;
  return { userId, server, url, expiresAt, verifier };
}
