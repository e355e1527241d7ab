// The HTTP routes (node:http, no framework) and the answers to refused upgrades.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { STATUS_CODES } from "node:http";
import type { SessionManager } from "./session.ts";

export interface RouteContext {
  sessions: SessionManager;
  indexHtml: () => Buffer;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(res.req.method === "HEAD" ? undefined : text);
}

/** An HTTP answer written straight onto an upgrade socket, which has no ServerResponse. */
export function rejectUpgrade(socket: Duplex, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`,
    "Connection: close",
    "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(text)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  if (socket.writable) socket.end(`${lines.join("\r\n")}\r\n\r\n${text}`);
  else socket.destroy();
}

interface Route {
  match: (pathname: string) => string[] | undefined;
  handle: (req: IncomingMessage, res: ServerResponse, params: string[], context: RouteContext) => void;
}

const exact = (path: string) => (pathname: string) => (pathname === path ? [] : undefined);

const routes: Route[] = [
  {
    match: exact("/"),
    handle: (req, res, _params, context) => {
      const page = context.indexHtml();
      res.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "content-length": page.length,
        "cache-control": "no-cache",
      });
      res.end(req.method === "HEAD" ? undefined : page);
    },
  },
  {
    match: exact("/health"),
    handle: (_req, res, _params, { sessions }) => sendJson(res, 200, { status: "healthy", active_sessions: sessions.size }),
  },
  {
    match: exact("/sessions"),
    handle: (_req, res, _params, { sessions }) =>
      sendJson(res, 200, { active_sessions: sessions.userIds(), total_sessions: sessions.size }),
  },
  {
    match: (pathname) => {
      const found = /^\/sessions\/([^/]+)$/.exec(pathname);
      return found?.[1] === undefined ? undefined : [found[1]];
    },
    handle: (_req, res, [encoded = ""], { sessions }) => {
      let userId: string;
      try {
        userId = decodeURIComponent(encoded);
      } catch {
        return sendJson(res, 400, { error: "the user id in the path is not valid percent-encoding" });
      }
      const session = sessions.get(userId);
      if (!session) return sendJson(res, 404, { error: `no session for user "${userId}"` });
      sendJson(res, 200, session.info());
    },
  },
];

export function handleRequest(req: IncomingMessage, res: ServerResponse, context: RouteContext): void {
  const raw = req.url ?? "/";
  const pathname = raw.includes("?") ? raw.slice(0, raw.indexOf("?")) : raw;
  for (const route of routes) {
    const params = route.match(pathname);
    if (!params) continue;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return sendJson(res, 405, { error: `method ${req.method} is not allowed on ${pathname}; use GET` }, { allow: "GET, HEAD" });
    }
    return route.handle(req, res, params, context);
  }
  sendJson(res, 404, { error: `not found: ${pathname}` });
}
