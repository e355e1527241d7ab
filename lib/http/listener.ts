// The node:http server: timeouts against slow clients, the Host and token checks, then the routes.
import http from "node:http";
import type { Config } from "../config.ts";
import { checkHost, checkToken, rawPathname } from "./access.ts";
import { endAndDestroy } from "./give-back.ts";
import { handleRequest, sendJson, type RouteContext } from "./routes.ts";

export function createHttpServer(config: Config, bindHost: string, context: RouteContext): http.Server {
  const headersTimeoutMs = config.server.headers_timeout_seconds * 1000;
  const requestTimeoutMs = config.server.request_timeout_seconds * 1000;
  // Node checks those timeouts only every connectionsCheckingInterval (30 s by default), which
  // would let a slowloris client stay that much longer than headers_timeout_seconds.
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, headersTimeoutMs / 2, requestTimeoutMs / 2));
  const server = http.createServer({ connectionsCheckingInterval }, (req, res) => {
    const pathname = rawPathname(req.url);
    const guarded = pathname === "/sessions" || pathname.startsWith("/sessions/");
    const refusal =
      checkHost(req.headers.host, bindHost, config.server.allowed_hosts) ??
      (guarded ? checkToken(req.headers, req.url, config.server.auth_token) : undefined);
    if (refusal) {
      // A refused client gets its answer and the connection closed, not kept alive for more tries.
      const headers: Record<string, string> = { connection: "close", ...(refusal.status === 401 ? { "www-authenticate": "Bearer" } : {}) };
      return sendJson(res, refusal.status, { error: refusal.error }, headers);
    }
    handleRequest(req, res, context);
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
