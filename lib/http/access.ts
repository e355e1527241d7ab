// Who may talk to the server: Host (DNS rebinding), Origin (hostile web pages), the token, and
// well-formed upgrade requests. Pure functions of the request's headers, tested without a socket.
import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import type { Authenticator, Identity } from "../auth/authenticator.ts";
import { tokenMatches } from "../auth/token-match.ts";
import type { HttpRefusal } from "../protocol.ts";

const LOOPBACK_NAMES = new Set(["localhost", "127.0.0.1", "::1", "[::1]"]);

/** True when the server listens only on this machine (then Host is checked against rebinding). */
export function isLoopbackBind(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || (isIP(host) === 4 && host.startsWith("127."));
}

/** `example.com:8000` → `example.com`; `[::1]:8000` → `[::1]`. */
export function hostWithoutPort(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.lastIndexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}

export type Refusal = HttpRefusal | undefined;

/**
 * While bound to loopback, only loopback names (any port) or configured hosts may appear in Host:
 * a DNS-rebinding page at evil.example resolving to 127.0.0.1 still sends Host: evil.example.
 */
export function checkHost(hostHeader: string | undefined, bindHost: string, allowedHosts: readonly string[]): Refusal {
  if (!isLoopbackBind(bindHost)) return undefined;
  const host = (hostHeader ?? "").toLowerCase();
  const name = hostWithoutPort(host);
  if (LOOPBACK_NAMES.has(name) || allowedHosts.some((allowed) => allowed.toLowerCase() === host || allowed.toLowerCase() === name)) {
    return undefined;
  }
  return {
    status: 403,
    code: "forbidden",
    error: `Host "${hostHeader ?? ""}" is not allowed: this server listens on loopback and answers only localhost, 127.0.0.1 and [::1]. Add the host to server.allowed_hosts to allow it`,
  };
}

/**
 * A browser always sends Origin on a WebSocket upgrade; a page on another site must not reach
 * the server (CVE-2025-49596). Scripts and the CLI send no Origin and are let through.
 */
export function checkOrigin(origin: string | undefined, hostHeader: string | undefined, allowedOrigins: readonly string[]): Refusal {
  if (origin === undefined) return undefined;
  // A page opened from a file (or a sandboxed frame) sends the opaque origin "null": only an
  // explicit "null" in the list allows it ("*" does not, as any sandboxed page sends it too).
  if (origin === "null" && allowedOrigins.includes("null")) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    const hint = origin === "null" ? ': a page opened from a file sends it. Add "null" to server.allowed_origins to allow such pages' : "";
    return { status: 403, code: "forbidden", error: `Origin "${origin}" is not allowed${hint}` };
  }
  const sameHost = hostHeader !== undefined && parsed.host.toLowerCase() === hostHeader.toLowerCase();
  const sameScheme = parsed.protocol === "http:" || parsed.protocol === "https:";
  if ((sameHost && sameScheme) || allowedOrigins.includes(origin) || allowedOrigins.includes("*")) return undefined;
  return {
    status: 403,
    code: "forbidden",
    error: `Origin "${origin}" is not allowed: only pages served by this server may open a socket. Add it to server.allowed_origins to allow it`,
  };
}

/**
 * The token a request carries: `Authorization: Bearer …`, `Authorization: Basic` (user:token, as
 * `curl -u` sends it), or a `token` query parameter (the page's sockets cannot set headers).
 */
export function requestToken(headers: IncomingHttpHeaders, url: string | undefined): string | undefined {
  const auth = headers.authorization;
  if (auth?.toLowerCase().startsWith("bearer ")) return auth.slice(7).trim();
  if (auth?.toLowerCase().startsWith("basic ")) return Buffer.from(auth.slice(6).trim(), "base64").toString("utf8");
  const query = new URL(url ?? "/", "http://localhost").searchParams.get("token");
  return query ?? undefined;
}

export { tokenMatches };

export function checkToken(headers: IncomingHttpHeaders, url: string | undefined, expected: string | undefined): Refusal {
  if (!expected) return undefined;
  if (tokenMatches(requestToken(headers, url), expected)) return undefined;
  return {
    status: 401,
    code: "unauthorized",
    error: "this server requires a token: send 'Authorization: Bearer <token>' or add ?token=<token> to the URL",
  };
}

/** What `ws` would otherwise answer with a bare status: a clear 400 for a malformed upgrade. */
export function checkUpgradeRequest(method: string | undefined, headers: IncomingHttpHeaders): Refusal {
  if (method !== "GET") return { status: 400, code: "invalid_request", error: `a WebSocket upgrade must be a GET request, got ${method}` };
  if ((headers.upgrade ?? "").toLowerCase() !== "websocket")
    return { status: 400, code: "invalid_request", error: "the Upgrade header must be 'websocket'" };
  const key = headers["sec-websocket-key"];
  if (typeof key !== "string" || !/^[+/0-9A-Za-z]{22}==$/.test(key)) {
    return { status: 400, code: "invalid_request", error: "missing or invalid Sec-WebSocket-Key header" };
  }
  if (headers["sec-websocket-version"] !== "13") {
    return { status: 400, code: "invalid_request", error: "unsupported Sec-WebSocket-Version: only version 13 is supported" };
  }
  return undefined;
}

/**
 * Whether a request may act as `userId` (its socket, its session, its files). Every per-user route
 * goes through this one check: no token or the shared token → any user id (server.auth.mode
 * token); a JWT or a users-file token → only its own user id; the admin token → any.
 */
export async function checkUserAccess(
  headers: IncomingHttpHeaders,
  url: string | undefined,
  userId: string,
  auth: Authenticator,
): Promise<Refusal> {
  const result = await auth.identify(requestToken(headers, url), userId);
  if (!result.ok) return { status: result.status, code: "unauthorized", error: result.error };
  if (mayActAs(result.identity, userId)) return undefined;
  return {
    status: 403,
    code: "forbidden",
    error: `this token is for another user id, not "${userId}": a token opens only its own user id`,
  };
}

/** Who the request is (for /sessions, which lists what that identity may see), or why not. */
export async function requestIdentity(
  headers: IncomingHttpHeaders,
  url: string | undefined,
  auth: Authenticator,
): Promise<{ ok: true; identity: Identity } | ({ ok: false } & HttpRefusal)> {
  const result = await auth.identify(requestToken(headers, url));
  return result.ok ? result : { ok: false, status: result.status, code: "unauthorized", error: result.error };
}

export function mayActAs(identity: Identity, userId: string): boolean {
  return identity.kind !== "user" || identity.userId === userId;
}

/** The raw path, not a URL-normalised one: `/ws/..` must reach the user id check, not become `/`. */
export function rawPathname(url: string | undefined): string {
  const raw = url ?? "/";
  const query = raw.indexOf("?");
  return query === -1 ? raw : raw.slice(0, query);
}

/**
 * A write (POST, PUT, DELETE) must carry a header a cross-site form cannot send: a foreign page
 * cannot add them without a CORS preflight, which this server never answers.
 */
export function checkScriptSent(method: string | undefined, headers: IncomingHttpHeaders): Refusal {
  if (method !== "POST" && method !== "PUT" && method !== "DELETE") return undefined;
  if (headers.authorization !== undefined || headers["x-requested-with"] !== undefined) return undefined;
  return {
    status: 403,
    code: "forbidden",
    error: `${method} needs a header a cross-site form cannot send: 'Authorization: Bearer <token>' or 'X-Requested-With: <anything>'`,
  };
}
