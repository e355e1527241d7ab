// Enterprise-managed authorization (SEP-990, "cross app access"): the user's ID token from the
// enterprise IdP is exchanged there (RFC 8693) for an identity assertion authorization grant
// (ID-JAG) aimed at the MCP server's authorization server, which then issues the access token for
// it (a JWT-bearer grant, RFC 7523). No browser is involved: the IdP's policy is the consent.
import { discoverAuthorizationServerMetadata } from "@modelcontextprotocol/sdk/client/auth.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import { isRecord } from "../protocol.ts";

export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
export const JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";
export const ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag";
export const ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token";

/** `mcp.servers.<name>.auth.oauth.cross_app_access` as this client uses it. */
export interface CrossAppAccessSettings {
  /** The IdP's token endpoint; else found from `idp_issuer`'s OpenID / RFC 8414 metadata. */
  idp_token_endpoint?: string;
  idp_issuer?: string;
  /** This server's client at the IdP (the one the ID token was issued to). */
  idp_client_id: string;
  idp_client_secret?: string;
  /** The user's ID token at the IdP (the subject token). */
  id_token: string;
}

export class CrossAppAccessError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CrossAppAccessError";
  }
}

/** The token endpoint of the IdP: the configured one, else its issuer's metadata's. */
async function idpTokenEndpoint(settings: CrossAppAccessSettings, fetchFn: FetchLike): Promise<string> {
  if (settings.idp_token_endpoint) return settings.idp_token_endpoint;
  if (!settings.idp_issuer)
    throw new CrossAppAccessError("auth.oauth.cross_app_access needs idp_token_endpoint or idp_issuer (where to exchange the ID token)");
  const metadata = await discoverAuthorizationServerMetadata(settings.idp_issuer, { fetchFn });
  if (!metadata)
    throw new CrossAppAccessError(`the IdP ${settings.idp_issuer} publishes no metadata (auth.oauth.cross_app_access.idp_issuer)`);
  return metadata.token_endpoint;
}

/**
 * RFC 8693 at the IdP: the user's ID token for an ID-JAG whose audience is the MCP server's
 * authorization server (its issuer) and whose resource is the MCP server.
 */
export async function requestIdJag(
  settings: CrossAppAccessSettings,
  target: { audience: string; resource: string; scope?: string },
  fetchFn: FetchLike = fetch,
): Promise<string> {
  const endpoint = await idpTokenEndpoint(settings, fetchFn);
  const body = new URLSearchParams({
    grant_type: TOKEN_EXCHANGE_GRANT,
    requested_token_type: ID_JAG_TYPE,
    subject_token: settings.id_token,
    subject_token_type: ID_TOKEN_TYPE,
    audience: target.audience,
    resource: target.resource,
    ...(target.scope ? { scope: target.scope } : {}),
  });
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
  if (settings.idp_client_secret) {
    const pair = `${encodeURIComponent(settings.idp_client_id)}:${encodeURIComponent(settings.idp_client_secret)}`;
    headers.authorization = `Basic ${Buffer.from(pair).toString("base64")}`;
  } else body.set("client_id", settings.idp_client_id);
  let response: Response;
  try {
    response = await fetchFn(endpoint, { method: "POST", headers, body });
  } catch (error) {
    throw new CrossAppAccessError(`the IdP token endpoint ${endpoint} is unreachable: ${(error as Error).message}`, { cause: error });
  }
  const text = await response.text();
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = undefined;
  }
  if (!response.ok || !isRecord(answer)) {
    const reason =
      isRecord(answer) && typeof answer.error === "string"
        ? `${answer.error}${typeof answer.error_description === "string" ? ` (${answer.error_description.slice(0, 300)})` : ""}`
        : `HTTP ${response.status}`;
    throw new CrossAppAccessError(`the IdP ${endpoint} refused to exchange the ID token for an ID-JAG: ${reason}`);
  }
  if (answer.issued_token_type !== ID_JAG_TYPE || typeof answer.access_token !== "string")
    throw new CrossAppAccessError(`the IdP ${endpoint} did not issue an ID-JAG (issued_token_type ${String(answer.issued_token_type)})`);
  return answer.access_token;
}

/** RFC 7523 at the MCP server's authorization server: the ID-JAG as the grant. */
export function jwtBearerRequest(assertion: string, scope?: string): URLSearchParams {
  return new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion, ...(scope ? { scope } : {}) });
}
