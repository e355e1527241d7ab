// The HTTP routes (node:http, no framework) and the answers to refused upgrades.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { STATUS_CODES } from "node:http";
import type { Metrics } from "../metrics/metrics.ts";
import { errorAnswer, type HttpRefusal, type SessionInfo } from "../protocol.ts";
import type { Authenticator, Identity } from "../auth/authenticator.ts";
import type { Redactor } from "../secrets/redactor.ts";
import { mayActAs } from "./access.ts";
import { endAndDestroy } from "./give-back.ts";
import { servesPath, type StaticFiles } from "./static-files.ts";

/** The sessions, as the routes show them (SessionManager in session.ts). */
export interface SessionDirectory {
  readonly size: number;
  userIds(): string[];
  /** A live session, or one kept only in the store (active: false); undefined when there is none. */
  info(userId: string): Promise<SessionInfo | undefined>;
}

export interface RouteContext {
  sessions: SessionDirectory;
  /** Every /sessions* answer passes it: MCP errors carry URLs, headers and server paths. */
  redactor: Redactor;
  /** Who is who (server.auth): /sessions lists only what the caller may see. */
  auth: Authenticator;
  /** The page and its libraries. */
  staticFiles: StaticFiles;
  metrics: Pick<Metrics, "scrape" | "contentType">;
  /** Cluster mode: this instance's id and Redis health, and the users live on any instance. */
  cluster?: {
    instance: string;
    healthy(): Promise<boolean>;
    liveUsers(): Promise<string[]>;
  };
  /** Everything under /files/ (lib/files/files-api.ts): it does its own access checks and methods. */
  files?: { handle(req: IncomingMessage, res: ServerResponse): void };
  /** Routes of other parts (OAuth, a user's servers) that do their own checks: each says whether the path was its own. */
  more?: { handle(req: IncomingMessage, res: ServerResponse, pathname: string): boolean }[];
}

/** A JSON answer. Errors go through sendError, which adds their code: a body here may not carry `error`. */
export function sendJson<Body extends object>(
  res: ServerResponse,
  status: number,
  body: Body & { error?: never },
  headers: Record<string, string> = {},
): void {
  writeJson(res, status, body, headers);
}

/** An error answer: `{"error", "code"}` (and `extra` fields) with the refusal's status. */
export function sendError(res: ServerResponse, refusal: HttpRefusal, headers: Record<string, string> = {}, extra: object = {}): void {
  writeJson(res, refusal.status, errorAnswer(refusal, { ...extra }), headers);
}

function writeJson(res: ServerResponse, status: number, body: object, headers: Record<string, string>): void {
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
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  body: ReturnType<typeof errorAnswer>,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`,
    "Connection: close",
    "Content-Type: application/json; charset=utf-8",
    `Content-Length: ${Buffer.byteLength(text)}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  endAndDestroy(socket, `${lines.join("\r\n")}\r\n\r\n${text}`);
}

interface Route {
  match: (pathname: string) => string[] | undefined;
  handle: (req: IncomingMessage, res: ServerResponse, params: string[], context: RouteContext, viewer: Identity | undefined) => void;
}

const exact = (wanted: string) => (pathname: string) => (pathname === wanted ? [] : undefined);

const routes: Route[] = [
  {
    // The page and its libraries: fixed paths only (lib/http/static-files.ts).
    match: (pathname) => (servesPath(pathname) ? [pathname] : undefined),
    handle: (req, res, [pathname = ""], { staticFiles }) =>
      staticFiles.serve(req, res, pathname, (error) => sendError(res, { status: 404, code: "not_found", error })),
  },
  {
    match: exact("/health"),
    handle: (_req, res, _params, { sessions, cluster }) => {
      if (!cluster) return sendJson(res, 200, { status: "healthy", active_sessions: sessions.size });
      // A load balancer takes an instance out while it cannot reach Redis (503), and back after.
      void cluster.healthy().then((ok) =>
        sendJson(res, ok ? 200 : 503, {
          status: ok ? "healthy" : "unhealthy",
          active_sessions: sessions.size,
          instance: cluster.instance,
          redis: ok ? "ok" : "unreachable",
        }),
      );
    },
  },
  {
    // Prometheus text format; behind the token like /sessions (see listener.ts).
    match: exact("/metrics"),
    handle: (req, res, _params, { metrics }) => {
      metrics.scrape().then(
        (text) => {
          res.writeHead(200, {
            "content-type": metrics.contentType,
            "content-length": Buffer.byteLength(text),
            "cache-control": "no-store",
          });
          res.end(req.method === "HEAD" ? undefined : text);
        },
        (error: unknown) =>
          sendError(res, { status: 500, code: "internal_error", error: `cannot collect the metrics: ${(error as Error).message}` }),
      );
    },
  },
  {
    match: exact("/sessions"),
    handle: (_req, res, _params, { sessions, cluster }, viewer) => {
      // With per-user identities a caller sees only their own session (the admin token: all).
      const visible = (users: string[]) => (viewer ? users.filter((userId) => mayActAs(viewer, userId)) : users);
      if (!cluster) {
        const users = visible(sessions.userIds());
        return sendJson(res, 200, { active_sessions: users, total_sessions: viewer?.kind === "user" ? users.length : sessions.size });
      }
      // The whole cluster's live sessions; this instance's alone when Redis cannot be asked.
      void cluster.liveUsers().then(
        (users) => {
          const all = visible([...new Set([...users, ...sessions.userIds()])].sort());
          sendJson(res, 200, { active_sessions: all, total_sessions: all.length });
        },
        () =>
          sendError(
            res,
            { status: 503, code: "server_unavailable", error: "the cluster's sessions cannot be listed: Redis is unreachable" },
            {},
            { active_sessions: visible(sessions.userIds()), total_sessions: visible(sessions.userIds()).length },
          ),
      );
    },
  },
  {
    match: (pathname) => {
      const found = /^\/sessions\/([^/]+)$/.exec(pathname);
      return found?.[1] === undefined ? undefined : [found[1]];
    },
    handle: (_req, res, [encoded = ""], { sessions, redactor }) => {
      const userId = decodeUserId(encoded);
      if (userId === undefined)
        return sendError(res, { status: 400, code: "invalid_user_id", error: "the user id in the path is not valid percent-encoding" });
      // Live sessions answer from memory; stored ones (active: false) from the store.
      sessions.info(userId).then(
        (info) =>
          info
            ? sendJson(res, 200, redactor.redactValue(info))
            : sendError(res, { status: 404, code: "not_found", error: `no session for user "${userId}"` }),
        (error: unknown) =>
          sendError(res, {
            status: 500,
            code: "server_unavailable",
            error: redactor.redact(`cannot read the session: ${(error as Error).message}`),
          }),
      );
    },
  },
];

function decodeUserId(encoded: string): string | undefined {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return undefined;
  }
}

/** The user id of `/sessions/<user_id>` (as the route decodes it), for the access check before the route. */
export function sessionsUserId(pathname: string): string | undefined {
  const found = /^\/sessions\/([^/]+)$/.exec(pathname);
  return found?.[1] === undefined ? undefined : decodeUserId(found[1]);
}

/** `viewer`: who asked, on the /sessions routes (undefined elsewhere). */
export function handleRequest(req: IncomingMessage, res: ServerResponse, context: RouteContext, viewer?: Identity): void {
  const raw = req.url ?? "/";
  const pathname = raw.includes("?") ? raw.slice(0, raw.indexOf("?")) : raw;
  if (context.files && (pathname === "/files" || pathname.startsWith("/files/"))) return context.files.handle(req, res);
  if (context.more?.some((part) => part.handle(req, res, pathname))) return;
  for (const route of routes) {
    const params = route.match(pathname);
    if (!params) continue;
    if (req.method !== "GET" && req.method !== "HEAD") {
      return sendError(
        res,
        { status: 405, code: "method_not_allowed", error: `method ${req.method} is not allowed on ${pathname}; use GET` },
        { allow: "GET, HEAD" },
      );
    }
    return route.handle(req, res, params, context, viewer);
  }
  sendError(res, { status: 404, code: "not_found", error: `not found: ${pathname}` });
}
