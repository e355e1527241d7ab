// The HTTP routes (node:http, no framework) and the answers to refused upgrades.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { STATUS_CODES } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import type { Metrics } from "../metrics/metrics.ts";
import { errorAnswer, type HttpRefusal, type SessionInfo } from "../protocol.ts";
import type { Authenticator, Identity } from "../auth/authenticator.ts";
import type { Redactor } from "../secrets/redactor.ts";
import { mayActAs } from "./access.ts";
import { endAndDestroy } from "./give-back.ts";

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
  indexHtml: () => Buffer;
  metrics: Pick<Metrics, "scrape" | "contentType">;
  /** Cluster mode: this instance's id and Redis health, and the users live on any instance. */
  cluster?: {
    instance: string;
    healthy(): Promise<boolean>;
    liveUsers(): Promise<string[]>;
  };
  /** Everything under /files/ (lib/files/files-api.ts): it does its own access checks and methods. */
  files?: { handle(req: IncomingMessage, res: ServerResponse): void };
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

// ---- the page ------------------------------------------------------------------------------
// The page's Content-Security-Policy allows only its own inline <script> and <style> blocks (by
// hash) and scripts from this server: even if Markdown sanitising ever let markup through, an
// injected <script> or onerror= would not run, and no remote image can carry data out.

const pagePolicies = new WeakMap<Buffer, string>();

function inlineHashes(html: string, tag: "script" | "style"): string {
  // Only bare `<script>`/`<style>` blocks are inline code; `<script src=...>` is covered by 'self'.
  return [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))]
    .map(
      (found) =>
        `'sha256-${createHash("sha256")
          .update((found[1] ?? "").replace(/\r\n?/g, "\n"))
          .digest("base64")}'`,
    )
    .join(" ");
}

export function pagePolicy(page: Buffer): string {
  let policy = pagePolicies.get(page);
  if (policy === undefined) {
    const html = page.toString("utf8");
    policy = [
      "default-src 'none'",
      `script-src 'self' ${inlineHashes(html, "script")}`,
      `style-src 'self' ${inlineHashes(html, "style")}`,
      // blob: for the Files panel's image previews, fetched with the user's token and shown from memory.
      "img-src 'self' data: blob:",
      "connect-src 'self' ws: wss:",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join("; ");
    pagePolicies.set(page, policy);
  }
  return policy;
}

// ---- /vendor: the page's two libraries, from node_modules -----------------------------------
// Two fixed names; nothing from the URL reaches the filesystem. Read once, then served from memory.

const requireFrom = createRequire(import.meta.url);
const VENDOR = new Map<string, { pkg: string; files: string[] }>([
  ["/vendor/marked.js", { pkg: "marked", files: ["lib/marked.umd.js", "marked.min.js"] }],
  ["/vendor/purify.js", { pkg: "dompurify", files: ["dist/purify.min.js", "dist/purify.js"] }],
]);
const vendorCache = new Map<string, { body: Buffer; etag: string }>();

/** The installed package's folder (its exports may hide package.json and the browser build). */
function packageRoot(name: string): string {
  let dir = path.dirname(requireFrom.resolve(name));
  for (;;) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === name) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json of ${name} above ${requireFrom.resolve(name)}`);
    dir = up;
  }
}

function vendorFile(pathname: string): { body: Buffer; etag: string } | undefined {
  const cached = vendorCache.get(pathname);
  if (cached) return cached;
  const entry = VENDOR.get(pathname);
  if (!entry) return undefined;
  let root: string;
  try {
    root = packageRoot(entry.pkg);
  } catch {
    return undefined;
  }
  const file = entry.files.map((name) => path.join(root, name)).find((candidate) => existsSync(candidate));
  if (!file) return undefined;
  // The source map is not served; drop the comment so devtools do not ask for it.
  const text = readFileSync(file, "utf8").replace(/\n\/\/# sourceMappingURL=\S+\s*$/, "\n");
  const body = Buffer.from(text);
  const found = { body, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"` };
  vendorCache.set(pathname, found);
  return found;
}

const routes: Route[] = [
  {
    match: exact("/"),
    handle: (req, res, _params, context) => {
      const page = context.indexHtml();
      res.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "content-length": page.length,
        "cache-control": "no-cache",
        "content-security-policy": pagePolicy(page),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
      });
      res.end(req.method === "HEAD" ? undefined : page);
    },
  },
  {
    match: (pathname) => (VENDOR.has(pathname) ? [pathname] : undefined),
    handle: (req, res, [pathname = ""]) => {
      const file = vendorFile(pathname);
      if (!file) {
        const pkg = VENDOR.get(pathname)?.pkg ?? "";
        return sendError(res, { status: 404, code: "not_found", error: `${pkg} is not installed: run npm install` });
      }
      const headers = {
        "content-type": "application/javascript; charset=utf-8",
        "cache-control": "public, max-age=86400",
        etag: file.etag,
        "x-content-type-options": "nosniff",
      };
      if (req.headers["if-none-match"] === file.etag) {
        res.writeHead(304, headers);
        return res.end();
      }
      res.writeHead(200, { ...headers, "content-length": file.body.length });
      res.end(req.method === "HEAD" ? undefined : file.body);
    },
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
