// The node:http server: timeouts against slow clients, the Host and token checks, then the routes.
import http from "node:http";
import type { Config } from "../config.ts";
import { checkHost, checkToken, rawPathname } from "./access.ts";
import { handleRequest, sendJson, type RouteContext } from "./routes.ts";

export function createHttpServer(config: Config, bindHost: string, context: RouteContext): http.Server {
  const headersTimeoutMs = config.server.headers_timeout_seconds * 1000;
  const requestTimeoutMs = config.server.request_timeout_seconds * 1000;
  // Node checks those timeouts only every connectionsCheckingInterval (30 s by default), which
  // would let a slowloris client stay that much longer than headers_timeout_seconds.
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, headersTimeoutMs / 2, requestTimeoutMs / 2));
  const server = http.createServer({ connectionsCheckingInterval }, (req, res) => {
    const pathname = rawPathname(req.url);
    const guarded = pathname === "/sessions" || pathname.startsWith("/sessions/") || pathname === "/metrics";
    const refusal =
      checkHost(req.headers.host, bindHost, config.server.allowed_hosts) ??
      (guarded ? checkToken(req.headers, req.url, config.server.auth_token) : undefined);
    if (refusal) {
      return sendJson(res, refusal.status, { error: refusal.error }, refusal.status === 401 ? { "www-authenticate": "Bearer" } : {});
    }
    handleRequest(req, res, context);
  });
  // A slowloris client that never finishes its headers or body is cut off.
  server.headersTimeout = headersTimeoutMs;
  server.requestTimeout = requestTimeoutMs;
  server.on("clientError", (_error, socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });
  return server;
}
