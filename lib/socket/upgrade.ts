// Which upgrade requests become a user's socket: a well-formed request to /ws/<user_id> from an
// allowed Host and Origin with a token for that user id. The request's method, URL and headers in,
// a user id or a refusal out.
import type { IncomingHttpHeaders } from "node:http";
import type { Authenticator } from "../auth/authenticator.ts";
import type { Config } from "../config.ts";
import { checkHost, checkOrigin, checkUpgradeRequest, checkUserAccess, rawPathname } from "../http/access.ts";
import { isValidUserId, USER_ID_RULE, type HttpRefusal } from "../protocol.ts";

export type UpgradeDecision = { ok: true; userId: string; streaming: boolean } | ({ ok: false } & HttpRefusal);

export async function decideUpgrade(
  request: { method?: string | undefined; url?: string | undefined; headers: IncomingHttpHeaders },
  server: Config["server"],
  bindHost: string,
  auth: Authenticator,
): Promise<UpgradeDecision> {
  const { method, url, headers } = request;
  const early = checkUpgradeRequest(method, headers) ?? checkHost(headers.host, bindHost, server.allowed_hosts);
  if (early) return { ok: false, ...early };
  const pathname = rawPathname(url);
  const found = /^\/ws\/([^/]*)$/.exec(pathname);
  if (!found) return { ok: false, status: 404, code: "not_found", error: `not found: ${pathname}; connect to /ws/<user_id>` };
  let userId: string;
  try {
    userId = decodeURIComponent(found[1] ?? "");
  } catch {
    return { ok: false, status: 400, code: "invalid_user_id", error: `invalid user id: ${USER_ID_RULE}` };
  }
  if (!isValidUserId(userId)) return { ok: false, status: 400, code: "invalid_user_id", error: `invalid user id: ${USER_ID_RULE}` };
  const late = checkOrigin(headers.origin, headers.host, server.allowed_origins) ?? (await checkUserAccess(headers, url, userId, auth));
  if (late) return { ok: false, ...late };
  return { ok: true, userId, streaming: wantsStreaming(url) };
}

/** Streaming is opt-in per socket: `/ws/<user_id>?stream=1` (or `true`). */
export function wantsStreaming(url: string | undefined): boolean {
  const value = new URL(url ?? "/", "http://localhost").searchParams.get("stream");
  return value === "1" || value === "true";
}
