// The node:http server: timeouts against slow clients, the Host and token checks, then the routes.
import http from "node:http";
import type { Config } from "../config.ts";
import { checkHost, checkUserAccess, rawPathname, requestIdentity } from "./access.ts";
import { endAndDestroy } from "./give-back.ts";
import type { HttpRefusal } from "../protocol.ts";
import { handleRequest, sendError, sessionsUserId, type RouteContext } from "./routes.ts";

export function createHttpServer(config: Config, bindHost: string, context: RouteContext): http.Server {
  const headersTimeoutMs = config.server.headers_timeout_seconds * 1000;
  const requestTimeoutMs = config.server.request_timeout_seconds * 1000;
  // Node checks those timeouts only every connectionsCheckingInterval (30 s by default), which
  // would let a slowloris client stay that much longer than headers_timeout_seconds.
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, headersTimeoutMs / 2, requestTimeoutMs / 2));
  const refuse = (res: http.ServerResponse, refusal: HttpRefusal) => {
    // A refused client gets its answer and the connection closed, not kept alive for more tries.
    const headers: Record<string, string> = { connection: "close", ...(refusal.status === 401 ? { "www-authenticate": "Bearer" } : {}) };
    sendError(res, refusal, headers);
  };
  const server = http.createServer({ connectionsCheckingInterval }, (req, res) => {
    const pathname = rawPathname(req.url);
    const hostRefusal = checkHost(req.headers.host, bindHost, config.server.allowed_hosts);
    if (hostRefusal) return refuse(res, hostRefusal);
    if (pathname === "/metrics") {
      // The operator's: the shared token (or none, when none is set) or the admin token, never a user's own.
      requestIdentity(req.headers, req.url, context.auth).then(
        (found) =>
          !found.ok
            ? refuse(res, found)
            : found.identity.kind === "user"
              ? refuse(res, {
                  status: 403,
                  code: "forbidden",
                  error: "the metrics are the operator's: use the admin token (server.auth.admin_token)",
                })
              : handleRequest(req, res, context),
        (error: unknown) =>
          refuse(res, { status: 500, code: "internal_error", error: `cannot check the token: ${(error as Error).message}` }),
      );
      return;
    }
    if (pathname !== "/sessions" && !pathname.startsWith("/sessions/")) return handleRequest(req, res, context);
    // /sessions/<user_id> is that user's: the one per-user check. /sessions lists what the caller may see.
    const userId = sessionsUserId(pathname);
    const checked =
      userId === undefined
        ? requestIdentity(req.headers, req.url, context.auth).then((found) => (found.ok ? { viewer: found.identity } : found))
        : checkUserAccess(req.headers, req.url, userId, context.auth).then((refusal) => refusal ?? { viewer: undefined });
    checked.then(
      (outcome) => ("viewer" in outcome ? handleRequest(req, res, context, outcome.viewer) : refuse(res, outcome)),
      (error: unknown) =>
        refuse(res, { status: 500, code: "internal_error", error: `cannot check the token: ${(error as Error).message}` }),
    );
  });
  // A slowloris client that never finishes its headers or body is cut off.
  server.headersTimeout = headersTimeoutMs;
  server.requestTimeout = requestTimeoutMs;
  // Bad bytes get a 400, a request that outlived the header or request timeout a 408; either way
  // the connection is then destroyed, not left half-closed for the client to end.
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    const timedOut = error.code === "ERR_HTTP_REQUEST_TIMEOUT";
    endAndDestroy(socket, `HTTP/1.1 ${timedOut ? "408 Request Timeout" : "400 Bad Request"}\r\nConnection: close\r\n\r\n`);
  });
  return server;
}
