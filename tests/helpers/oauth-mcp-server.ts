// A remote MCP server behind OAuth, for tests: protected-resource metadata (RFC 9728),
// authorization-server metadata (RFC 8414), dynamic registration, an authorization endpoint that
// approves at once (the "browser" follows its redirect), PKCE-checked tokens, refresh tokens that
// count every reuse, and a streamable HTTP MCP endpoint that answers 401 without a valid token.
import http from "node:http";
import { createHash, randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

export interface OAuthMcpServer {
  url: string;
  /** Tokens issued, by access token: whose (the `login_hint`-free approval names it by client). */
  refreshes: number;
  /** Refresh tokens presented a second time: must stay 0. */
  reusedRefreshTokens: number;
  tokensIssued: string[];
  close(): Promise<void>;
}

export async function startOAuthMcpServer(options: { expiresInSeconds?: number } = {}): Promise<OAuthMcpServer> {
  const codes = new Map<string, { challenge: string; clientId: string; redirectUri: string; resource: string | null }>();
  const accessTokens = new Set<string>();
  const refreshTokens = new Map<string, boolean>(); // token -> used
  let base = "";
  const state: OAuthMcpServer = {
    url: "",
    refreshes: 0,
    reusedRefreshTokens: 0,
    tokensIssued: [],
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const issue = (res: http.ServerResponse) => {
    const access = randomBytes(16).toString("hex");
    const refresh = randomBytes(16).toString("hex");
    accessTokens.add(access);
    refreshTokens.set(refresh, false);
    state.tokensIssued.push(access);
    json(res, 200, { access_token: access, token_type: "Bearer", refresh_token: refresh, expires_in: options.expiresInSeconds ?? 3600 });
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", base);
    void (async () => {
      const body = req.method === "POST" ? await readBody(req) : "";
      if (url.pathname === "/.well-known/oauth-protected-resource/mcp" || url.pathname === "/.well-known/oauth-protected-resource")
        return json(res, 200, { resource: `${base}/mcp`, authorization_servers: [base], scopes_supported: ["tools"] });
      if (url.pathname === "/.well-known/oauth-authorization-server")
        return json(res, 200, {
          issuer: base,
          authorization_endpoint: `${base}/authorize`,
          token_endpoint: `${base}/token`,
          registration_endpoint: `${base}/register`,
          response_types_supported: ["code"],
          grant_types_supported: ["authorization_code", "refresh_token"],
          code_challenge_methods_supported: ["S256"],
          token_endpoint_auth_methods_supported: ["none"],
          authorization_response_iss_parameter_supported: true,
        });
      if (url.pathname === "/register") {
        const metadata = JSON.parse(body) as Record<string, unknown>;
        return json(res, 201, { ...metadata, client_id: `client-${randomBytes(4).toString("hex")}`, token_endpoint_auth_method: "none" });
      }
      if (url.pathname === "/authorize") {
        const redirectUri = url.searchParams.get("redirect_uri") ?? "";
        const code = randomBytes(8).toString("hex");
        codes.set(code, {
          challenge: url.searchParams.get("code_challenge") ?? "",
          clientId: url.searchParams.get("client_id") ?? "",
          redirectUri,
          resource: url.searchParams.get("resource"),
        });
        const back = new URL(redirectUri);
        back.searchParams.set("code", code);
        back.searchParams.set("state", url.searchParams.get("state") ?? "");
        back.searchParams.set("iss", base);
        res.writeHead(302, { location: back.href }).end();
        return;
      }
      if (url.pathname === "/token") {
        const params = new URLSearchParams(body);
        if (params.get("grant_type") === "authorization_code") {
          const entry = codes.get(params.get("code") ?? "");
          codes.delete(params.get("code") ?? "");
          const verifier = params.get("code_verifier") ?? "";
          const challenge = createHash("sha256").update(verifier).digest("base64url");
          if (!entry || entry.challenge !== challenge || entry.redirectUri !== params.get("redirect_uri"))
            return json(res, 400, { error: "invalid_grant" });
          return issue(res);
        }
        if (params.get("grant_type") === "refresh_token") {
          const token = params.get("refresh_token") ?? "";
          const used = refreshTokens.get(token);
          if (used === undefined) return json(res, 400, { error: "invalid_grant" });
          if (used) {
            state.reusedRefreshTokens++;
            return json(res, 400, { error: "invalid_grant", error_description: "refresh token reused" });
          }
          refreshTokens.set(token, true);
          state.refreshes++;
          return issue(res);
        }
        return json(res, 400, { error: "unsupported_grant_type" });
      }
      if (url.pathname === "/mcp") {
        const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
        if (!bearer || !accessTokens.has(bearer)) {
          res.writeHead(401, {
            "www-authenticate": `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp", scope="tools"`,
            "content-type": "application/json",
          });
          res.end(JSON.stringify({ error: "invalid_token" }));
          return;
        }
        const mcp = new McpServer({ name: "protected", version: "1.0.0" });
        mcp.registerTool("whoami", { description: "Says which token called", inputSchema: { note: z.string().optional() } }, () => ({
          content: [{ type: "text", text: `token ${bearer.slice(0, 6)}` }],
        }));
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
        await mcp.connect(transport);
        return transport.handleRequest(req, res, body ? (JSON.parse(body) as unknown) : undefined);
      }
      res.writeHead(404).end();
    })().catch((error: unknown) => {
      if (!res.headersSent) json(res, 500, { error: String(error) });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.url = `${base}/mcp`;
  return state;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) }).end(text);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
