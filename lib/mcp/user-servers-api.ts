// A user's own MCP servers over HTTP (GET/POST/DELETE /servers/<user_id>[/<name>], with the
// same Origin, access and CSRF-header rules as /files) and over the streaming socket
// (server_add / server_remove): both change the store first, then the user's live session here.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Authenticator } from "../auth/authenticator.ts";
import type { Config } from "../config.ts";
import { checkOrigin, checkScriptSent, checkUserAccess } from "../http/access.ts";
import { sendError, sendJson } from "../http/routes.ts";
import type { Logger } from "../log.ts";
import { isValidUserId, parseUserServer, streamErrorFrame, type ErrorCode, type UserServerInput } from "../protocol.ts";

/** The code of a refusal by its HTTP status. */
function codeOf(status: number): ErrorCode {
  if (status === 400 || status === 413) return "invalid_request";
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 405) return "method_not_allowed";
  if (status === 409) return "conflict";
  return "internal_error";
}
import type { ServerActionHandlers } from "./server-actions.ts";
import type { McpHub } from "./hub.ts";
import type { UserServerRefusal, UserServers } from "./user-servers.ts";

const MAX_BODY_BYTES = 64 * 1024;

/** What changes when a user adds or removes a server: the live hub here, and the user's tokens. */
export interface UserServerHooks {
  /** The user's live session on this instance, if any. */
  hubOf(userId: string): { hub: McpHub; sessionId: string } | undefined;
  connect(userId: string, sessionId: string, name: string, hub: McpHub): Promise<void>;
  /** A removed server's tokens go with it. */
  forget(userId: string, name: string): Promise<void>;
}

export class UserServersApi {
  readonly #servers: UserServers;
  readonly #config: Config;
  readonly #auth: Authenticator;
  readonly #log: Logger;
  readonly #hooks: UserServerHooks;

  constructor(options: { servers: UserServers; config: Config; auth: Authenticator; log: Logger; hooks: UserServerHooks }) {
    this.#servers = options.servers;
    this.#config = options.config;
    this.#auth = options.auth;
    this.#log = options.log;
    this.#hooks = options.hooks;
  }

  async add(userId: string, server: UserServerInput): Promise<{ ok: true } | UserServerRefusal> {
    const added = await this.#servers.add(userId, server);
    if (!added.ok) return added;
    this.#log.info("user_server_added", { user_id: userId, server: server.name });
    const live = this.#hooks.hubOf(userId);
    if (live) await this.#hooks.connect(userId, live.sessionId, server.name, live.hub);
    return added;
  }

  async remove(userId: string, name: string): Promise<boolean> {
    const removed = await this.#servers.remove(userId, name);
    if (!removed) return false;
    this.#log.info("user_server_removed", { user_id: userId, server: name });
    await this.#hooks.forget(userId, name);
    await this.#hooks.hubOf(userId)?.hub.remove(name);
    return true;
  }

  /** The socket's server_add / server_remove. */
  socketActions(): Pick<ServerActionHandlers, "add" | "remove"> {
    return {
      add: (session, peer, frame) => {
        this.add(session.userId, frame.server).then(
          (outcome) => {
            if (!outcome.ok) peer.send(streamErrorFrame(codeOf(outcome.status), outcome.error));
          },
          (error: unknown) => peer.send(streamErrorFrame("internal_error", `cannot add the server: ${(error as Error).message}`)),
        );
      },
      remove: (session, peer, name) => {
        this.remove(session.userId, name).then(
          (removed) => {
            if (!removed) peer.send(streamErrorFrame("unknown_server", `you have no MCP server named "${name}"`));
          },
          (error: unknown) => peer.send(streamErrorFrame("internal_error", `cannot remove the server: ${(error as Error).message}`)),
        );
      },
    };
  }

  /** True when the path is /servers/...: answered here. */
  handle(req: IncomingMessage, res: ServerResponse, pathname: string): boolean {
    if (pathname !== "/servers" && !pathname.startsWith("/servers/")) return false;
    this.#route(req, res, pathname).catch((error: unknown) => {
      this.#log.error("servers_request_failed", { method: req.method, error: (error as Error).message });
      if (!res.headersSent) sendError(res, { status: 500, code: codeOf(500), error: `the request failed: ${(error as Error).message}` });
    });
    return true;
  }

  async #route(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<void> {
    const parts = pathname.split("/").slice(2).map(decodePart);
    const [userId, name, ...rest] = parts;
    if (userId === undefined || userId === null || !isValidUserId(userId) || rest.length > 0 || name === null)
      return sendError(res, { status: 404, code: codeOf(404), error: "use /servers/<user_id> or /servers/<user_id>/<name>" });
    const method = req.method ?? "GET";
    const allowed = name === undefined ? ["GET", "HEAD", "POST"] : ["DELETE"];
    if (!allowed.includes(method))
      return sendError(
        res,
        { status: 405, code: "method_not_allowed", error: `method ${method} is not allowed on ${pathname}; use ${allowed.join(", ")}` },
        { allow: allowed.join(", ") },
      );
    const refused =
      checkOrigin(req.headers.origin, req.headers.host, this.#config.server.allowed_origins) ??
      (await checkUserAccess(req.headers, req.url, userId, this.#auth)) ??
      checkScriptSent(method, req.headers);
    if (refused) return sendError(res, refused);
    if (!this.#servers.enabled)
      return sendError(res, {
        status: 403,
        code: "user_servers_disabled",
        error: "adding MCP servers is turned off (mcp.user_servers.enabled)",
      });
    if (method === "GET" || method === "HEAD") return sendJson(res, 200, { servers: await this.#servers.list(userId) });
    if (method === "DELETE") {
      const removed = await this.remove(userId, name ?? "");
      if (!removed) return sendError(res, { status: 404, code: "unknown_server", error: `you have no MCP server named "${name ?? ""}"` });
      res.writeHead(204).end();
      return;
    }
    const body = await readJson(req);
    if (!body.ok) return sendError(res, { status: body.status, code: codeOf(body.status), error: body.error });
    const parsed = parseUserServer(body.value);
    if (!parsed.ok) return sendError(res, { status: 400, code: codeOf(400), error: parsed.error });
    const added = await this.add(userId, parsed.server);
    if (!added.ok) return sendError(res, { status: added.status, code: codeOf(added.status), error: added.error });
    const view = (await this.#servers.list(userId)).find((server) => server.name === parsed.server.name);
    sendJson(res, 201, { server: view });
  }
}

function decodePart(part: string): string | null {
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}

function readJson(req: IncomingMessage): Promise<{ ok: true; value: unknown } | { ok: false; status: number; error: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        resolve({ ok: false, status: 413, error: `the body is larger than ${MAX_BODY_BYTES} bytes` });
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      try {
        resolve({ ok: true, value: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
      } catch {
        resolve({ ok: false, status: 400, error: 'the body must be JSON: {"name", "url", "transport", "headers"}' });
      }
    });
    req.on("error", () => resolve({ ok: false, status: 400, error: "the request body could not be read" }));
  });
}
