// Who a request is: built once from server.auth (and server.auth_token) at start. The shared
// token (or no token at all) lets its holder act as any user id; a JWT or a users-file token
// names one user id; the admin token sees everything. lib/http/access.ts asks it per request.
import { createPublicKey, randomBytes, type KeyObject } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey } from "jose";
import { parse as parseYaml } from "yaml";
import { ConfigError, type Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { isValidUserId } from "../protocol.ts";
import { clientAddress, trustedProxies } from "../http/client-address.ts";
import { FailedChecks } from "./failed-checks.ts";
import { DEFAULT_PARAMS, parseTokenHash, verifyToken, type ParsedHash } from "./token-hash.ts";
import { tokenDigest, tokenMatches } from "./token-match.ts";

/** `anyone`: no auth, or the shared token; `admin`: the admin token; `user`: a token that names one user id. */
export type Identity = { kind: "anyone" } | { kind: "admin" } | { kind: "user"; userId: string };

/**
 * A refusal: 401 (the token is wrong), or 429/503 with when to retry (too many failed checks, or
 * too many checks waiting): a busy server never calls a correct token "not valid".
 */
export type AuthResult =
  | { ok: true; identity: Identity }
  | { ok: false; status: 401; error: string }
  | { ok: false; status: 429 | 503; error: string; code: "rate_limited" | "server_busy"; retryAfterSeconds: number };

/** Where a request comes from: the peer's address and X-Forwarded-For (used only from server.trusted_proxies). */
export interface RequestOrigin {
  peerAddress?: string | undefined;
  forwardedFor?: string | string[] | undefined;
}

export type AuthMode = "none" | "token" | "jwt" | "users";

/** Verified users-file tokens are remembered (by a hash of the token) so reconnects do not pay scrypt again. */
const VERIFIED_CACHE_MAX = 10_000;
/**
 * scrypt runs on libuv's thread pool (4 threads), which DNS look-ups and file writes share: at most
 * this many checks run at once, and at most MAX_WAITING wait, so a flood of wrong tokens cannot
 * starve the rest of the server.
 */
const MAX_CONCURRENT_CHECKS = 2;
const MAX_WAITING_CHECKS = 64;
/** How often the users file is looked at for changes, ms: users are added without a restart. */
const USERS_FILE_CHECK_MS = 2000;

export class Authenticator {
  readonly mode: AuthMode;
  readonly #sharedToken: string | undefined;
  readonly #adminToken: string | undefined;
  readonly #jwt:
    | { key: Uint8Array | KeyObject | JWTVerifyGetKey; algorithms: string[]; issuer?: string; audience?: string; tolerance: number }
    | undefined;
  #users: Map<string, ParsedHash> | undefined;
  readonly #verified = new Map<string, string>();
  readonly #usersFile: { path: string; mtimeMs: number; checkedAt: number } | undefined;
  readonly #log: Logger | undefined;
  #checking = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #failed: FailedChecks;
  readonly #isTrustedProxy: (address: string) => boolean;
  /** Unknown user ids are checked against this (a random hash): they cost what a known one costs. */
  readonly #dummy: ParsedHash = { params: DEFAULT_PARAMS, salt: randomBytes(16), hash: randomBytes(32) };
  readonly #maxTokenAgeSeconds: number;

  constructor(config: Config, log?: Logger) {
    this.#log = log;
    const { auth, auth_token } = config.server;
    this.#failed = new FailedChecks({ perMinute: auth.failed_checks_per_minute, burst: auth.failed_check_burst });
    this.#isTrustedProxy = trustedProxies(config.server.trusted_proxies);
    this.#maxTokenAgeSeconds = auth.max_token_age_seconds;
    this.#adminToken = auth.admin_token || undefined;
    this.#sharedToken = auth.mode === "token" ? auth_token : undefined;
    this.mode = auth.mode === "token" ? (auth_token ? "token" : "none") : auth.mode;
    if (auth.mode === "jwt") this.#jwt = jwtSettings(auth.jwt);
    if (auth.mode === "users") {
      const file = path.resolve(config.configDir, auth.users_file ?? "");
      this.#users = readUsersFile(file);
      this.#usersFile = { path: file, mtimeMs: mtimeOf(file), checkedAt: Date.now() };
    }
  }

  /** Runs `check` when a slot is free; "busy" (not run) when too many already wait. */
  async #limited(check: () => Promise<boolean>): Promise<boolean | "busy"> {
    if (this.#checking >= MAX_CONCURRENT_CHECKS) {
      if (this.#waiting.length >= MAX_WAITING_CHECKS) return "busy";
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    this.#checking++;
    try {
      return await check();
    } finally {
      this.#checking--;
      this.#waiting.shift()?.();
    }
  }

  /** A changed users file is read again; a broken one is reported and the last good one kept. */
  #refreshUsers(now: number): void {
    const file = this.#usersFile;
    if (!file || now - file.checkedAt < USERS_FILE_CHECK_MS) return;
    file.checkedAt = now;
    const mtimeMs = mtimeOf(file.path);
    if (mtimeMs === file.mtimeMs) return;
    file.mtimeMs = mtimeMs;
    try {
      this.#users = readUsersFile(file.path);
      this.#verified.clear();
      this.#log?.info("users_file_reloaded", { users: this.#users.size });
    } catch (error) {
      this.#log?.error("users_file_invalid", { error: (error as Error).message, kept: "the last valid users file" });
    }
  }

  /** Whether a token names one user (then a socket may open only that user id). */
  get perUser(): boolean {
    return this.mode === "jwt" || this.mode === "users";
  }

  /**
   * Who presents `token`. `pathUserId`: the user id the request is about, which a bare
   * users-file token is checked against (a `user:token` pair names its user itself).
   */
  async identify(token: string | undefined, pathUserId?: string, from: RequestOrigin = {}): Promise<AuthResult> {
    if (token !== undefined && this.#adminToken && tokenMatches(token, this.#adminToken)) return { ok: true, identity: { kind: "admin" } };
    switch (this.mode) {
      case "none":
        return { ok: true, identity: { kind: "anyone" } };
      case "token":
        if (this.#sharedToken && tokenMatches(token, this.#sharedToken)) return { ok: true, identity: { kind: "anyone" } };
        return refuse("this server requires a token: send 'Authorization: Bearer <token>' or add ?token=<token> to the URL");
      case "jwt":
        return this.#identifyJwt(token);
      case "users":
        return this.#identifyUser(token, pathUserId, clientAddress(from.peerAddress, from.forwardedFor, this.#isTrustedProxy));
      default:
        return this.mode satisfies never;
    }
  }

  async #identifyJwt(token: string | undefined): Promise<AuthResult> {
    const jwt = this.#jwt;
    if (!jwt || !token)
      return refuse(
        "this server requires a signed token (JWT) whose subject is your user id: send 'Authorization: Bearer <jwt>' or ?token=<jwt>",
      );
    try {
      const options = {
        algorithms: jwt.algorithms,
        clockTolerance: jwt.tolerance,
        ...(jwt.issuer ? { issuer: jwt.issuer } : {}),
        ...(jwt.audience ? { audience: jwt.audience } : {}),
      };
      // jose checks the signature, exp and nbf (and iss/aud when configured).
      const { payload } =
        typeof jwt.key === "function" ? await jwtVerify(token, jwt.key, options) : await jwtVerify(token, jwt.key, options);
      if (typeof payload.sub !== "string" || !isValidUserId(payload.sub))
        return refuse("the token's subject (sub) is missing or is not a valid user id");
      // A token without an expiry would be good forever once it leaked.
      if (typeof payload.exp !== "number") return refuse("the token was not accepted: it has no expiry (exp), which this server requires");
      const from = typeof payload.iat === "number" ? payload.iat : Math.floor(Date.now() / 1000);
      if (payload.exp - from > this.#maxTokenAgeSeconds + jwt.tolerance) {
        return refuse(
          `the token was not accepted: it is valid for longer than ${this.#maxTokenAgeSeconds} s (server.auth.max_token_age_seconds)`,
        );
      }
      return { ok: true, identity: { kind: "user", userId: payload.sub } };
    } catch (error) {
      return refuse(`the token was not accepted: ${jwtReason(error)}`);
    }
  }

  async #identifyUser(token: string | undefined, pathUserId: string | undefined, address: string): Promise<AuthResult> {
    this.#refreshUsers(Date.now());
    const users = this.#users;
    if (!users || !token) return refuse("this server requires your user token: send 'Authorization: Bearer <token>' or ?token=<token>");
    // `alice:token` names its user; a bare token is for the user id in the path.
    let userId = pathUserId;
    let secret = token;
    const colon = token.indexOf(":");
    // Without a user id in the path, `name:` names the user whether or not it exists (an unknown
    // one then costs a dummy check): the answer's time must not tell which user ids exist.
    const named = colon > 0 && (users.has(token.slice(0, colon)) || (pathUserId === undefined && isValidUserId(token.slice(0, colon))));
    if (named) {
      userId = token.slice(0, colon);
      secret = token.slice(colon + 1);
    }
    const invalid = "this token is not valid for this user id (server.auth.users_file)";
    if (!userId) return refuse(invalid);
    const fingerprint = tokenDigest(userId, secret);
    if (this.#verified.get(userId) === fingerprint) return { ok: true, identity: { kind: "user", userId } };
    const now = Date.now();
    const waitMs = this.#failed.begin(address, userId, now);
    if (waitMs > 0) {
      const seconds = Math.ceil(waitMs / 1000);
      return {
        ok: false,
        status: 429,
        code: "rate_limited",
        retryAfterSeconds: seconds,
        error: `too many failed token checks from your address or for this user id (server.auth.failed_check_burst, server.auth.failed_checks_per_minute); retry in ${seconds} s`,
      };
    }
    // An unknown user id is checked against a dummy hash: the answer takes as long as for a known one.
    const hash = users.get(userId);
    const verified = await this.#limited(() => verifyToken(secret, hash ?? this.#dummy));
    if (verified === "busy") {
      this.#failed.succeeded(address, userId);
      return {
        ok: false,
        status: 503,
        code: "server_busy",
        retryAfterSeconds: 1,
        error: "the server is busy checking other tokens; retry in a second (your token was not checked)",
      };
    }
    if (!verified || !hash) return refuse(invalid);
    this.#failed.succeeded(address, userId);
    if (this.#verified.size >= VERIFIED_CACHE_MAX) this.#verified.clear();
    this.#verified.set(userId, fingerprint);
    return { ok: true, identity: { kind: "user", userId } };
  }
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

function refuse(error: string): AuthResult {
  return { ok: false, status: 401, error };
}

/** What went wrong with a JWT, in words a person can act on (never the token itself). */
function jwtReason(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return "it has expired (exp)";
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `claim "${error.claim}" failed: ${error.reason}`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return "its signature does not verify";
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return "its algorithm is not allowed for this key";
  if (error instanceof joseErrors.JWKSNoMatchingKey) return "no key of the key set matches it";
  if (error instanceof joseErrors.JOSEError) return error.message;
  return "it is not a well-formed JWT";
}

function jwtSettings(jwt: Config["server"]["auth"]["jwt"]) {
  const common = {
    tolerance: jwt.clock_tolerance_seconds,
    ...(jwt.issuer ? { issuer: jwt.issuer } : {}),
    ...(jwt.audience ? { audience: jwt.audience } : {}),
  };
  if (jwt.secret) {
    if (jwt.secret.length < 32)
      throw new ConfigError("server.auth.jwt.secret: must be at least 32 characters (an HS256 key that short can be guessed)");
    return { key: new TextEncoder().encode(jwt.secret), algorithms: ["HS256", "HS384", "HS512"], ...common };
  }
  if (jwt.public_key) {
    let key: KeyObject;
    try {
      key = createPublicKey(jwt.public_key);
    } catch (error) {
      throw new ConfigError(`server.auth.jwt.public_key: not a PEM public key (${(error as Error).message})`);
    }
    // Only the algorithms of this key's type: an HS256 token "signed" with the public key as a secret is refused.
    return { key, algorithms: algorithmsFor(key.asymmetricKeyType), ...common };
  }
  let url: URL;
  try {
    url = new URL(jwt.jwks_url ?? "");
  } catch {
    throw new ConfigError(`server.auth.jwt.jwks_url: not a URL: "${jwt.jwks_url ?? ""}"`);
  }
  return {
    key: createRemoteJWKSet(url, { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 }),
    algorithms: ASYMMETRIC,
    ...common,
  };
}

const ASYMMETRIC = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

function algorithmsFor(type: string | undefined): string[] {
  if (type === "rsa" || type === "rsa-pss") return ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
  if (type === "ec") return ["ES256", "ES384", "ES512"];
  if (type === "ed25519" || type === "ed448") return ["EdDSA"];
  throw new ConfigError(`server.auth.jwt.public_key: keys of type ${type ?? "unknown"} are not supported (RSA, EC or Ed25519)`);
}

/** The users file: `user_id: "$scrypt$…"` per line (YAML), or the same as a JSON object. Checked whole at start. */
export function readUsersFile(file: string): Map<string, ParsedHash> {
  let data: unknown;
  try {
    data = parseYaml(readFileSync(file, "utf8"));
  } catch (error) {
    throw new ConfigError(`server.auth.users_file: cannot read ${file}: ${(error as Error).message}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError(`server.auth.users_file: ${file} must map user ids to token hashes`);
  }
  const users = new Map<string, ParsedHash>();
  for (const [userId, value] of Object.entries(data)) {
    if (!isValidUserId(userId)) throw new ConfigError(`server.auth.users_file: ${file}: "${userId}" is not a valid user id`);
    const parsed = typeof value === "string" ? parseTokenHash(value) : "not a string";
    if (typeof parsed === "string") throw new ConfigError(`server.auth.users_file: ${file}: user "${userId}": ${parsed}`);
    users.set(userId, parsed);
  }
  return users;
}
