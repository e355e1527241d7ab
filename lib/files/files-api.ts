// The workspace over HTTP: GET /files/<user_id>[/<folder>] lists, GET /files/<user_id>/<file>
// downloads, PUT uploads the raw body, DELETE removes a file or an empty folder. Same checks as
// the user's socket (Host in the listener, Origin, the per-user access check), and every path goes
// through the filesystem tools' own containment check (lib/filesystem/containment.ts).
import { constants, promises as fs } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import type { Authenticator } from "../auth/authenticator.ts";
import type { Config } from "../config.ts";
import {
  deniedBy,
  errorCode,
  errorMessage,
  openInWorkspace,
  PathChanged,
  realRoot,
  resolveInWorkspace,
  type RefusedBecause,
} from "../filesystem/containment.ts";
import { checkOrigin, checkUserAccess, rawPathname, type Refusal } from "../http/access.ts";
import type { Logger } from "../log.ts";
import { errorAnswer, filesChangedFrame, isValidUserId, USER_ID_RULE, type FilesChangedFrame, type HttpRefusal } from "../protocol.ts";
import { serverOwnFiles, type Workspaces } from "../workspace/workspaces.ts";
import { listTree, workspaceUsage } from "./listing.ts";
import { downloadTypeOf } from "./mime.ts";
import { attachmentDisposition, decideRange } from "./range.ts";
import { receiveUpload, tooLarge, UploadReservations, type UploadLimits } from "./upload.ts";

/** Entries one listing shows at most; past it the answer says `truncated: true`. */
const MAX_LISTED = 5000;

export interface FilesApiOptions {
  config: Config;
  workspaces: Workspaces;
  log: Logger;
  /** Who may act as which user (server.auth): the same check as the user's socket. */
  auth: Authenticator;
  /** Tells every streaming socket of the user (files_changed). */
  notify(userId: string, frame: FilesChangedFrame): void;
}

type Target = { userId: string; relative: string };

/** `/files/<user_id>/<percent-encoded path>` → the user and the decoded path ("" for the root). */
export function parseFilesPath(pathname: string): { ok: true; target: Target } | ({ ok: false } & HttpRefusal) {
  const found = /^\/files\/([^/]*)(?:\/(.*))?$/.exec(pathname);
  if (!found) return { ok: false, status: 404, code: "not_found", error: "not found: the files API is /files/<user_id>/<path>" };
  let userId: string;
  let relative: string;
  try {
    userId = decodeURIComponent(found[1] ?? "");
    relative = (found[2] ?? "")
      .split("/")
      .map((segment) => decodeURIComponent(segment))
      .join("/");
  } catch {
    return { ok: false, status: 400, code: "invalid_request", error: "the path is not valid percent-encoding" };
  }
  if (!isValidUserId(userId))
    return { ok: false, status: 400, code: "invalid_user_id", error: `invalid user id "${userId}": ${USER_ID_RULE}` };
  if (relative.includes("\0")) return { ok: false, status: 400, code: "invalid_request", error: "the path contains a NUL byte" };
  return { ok: true, target: { userId, relative } };
}

/** A JSON answer; errors go through sendError, which adds their code: a body here may not carry `error`. */
function send<Body extends object>(
  res: ServerResponse,
  status: number,
  body: Body & { error?: never },
  headers: Record<string, string> = {},
): void {
  writeJson(res, status, body, headers);
}

function sendError(res: ServerResponse, refusal: HttpRefusal, headers: Record<string, string> = {}, extra: object = {}): void {
  writeJson(res, refusal.status, errorAnswer(refusal, { ...extra }), headers);
}

function writeJson(res: ServerResponse, status: number, body: object, headers: Record<string, string>): void {
  const text = JSON.stringify(body);
  if (res.headersSent) return void res.destroy();
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(res.req.method === "HEAD" ? undefined : text);
}

export class FilesApi {
  readonly #options: FilesApiOptions;
  readonly #limits: UploadLimits;
  readonly #deny: string[];
  readonly #reservations = new UploadReservations();

  constructor(options: FilesApiOptions) {
    this.#options = options;
    this.#limits = {
      maxUploadBytes: options.config.limits.max_upload_bytes,
      workspaceBytes: options.config.limits.workspace_bytes,
    };
    this.#deny = serverOwnFiles(options.config);
  }

  /** Every request under /files/. Never throws: a failure is a JSON answer (500 at worst). */
  handle(req: IncomingMessage, res: ServerResponse): void {
    this.#route(req, res).catch((error: unknown) => {
      this.#options.log.error("files_request_failed", { method: req.method, error: errorMessage(error) });
      sendError(res, { status: 500, code: "internal_error", error: `the request failed: ${errorMessage(error)}` });
    });
  }

  /** Origin, then the user's access check, then (for PUT/DELETE) proof that a script sent it. */
  async #refusal(req: IncomingMessage, userId: string): Promise<Refusal> {
    const { server } = this.#options.config;
    const refused =
      checkOrigin(req.headers.origin, req.headers.host, server.allowed_origins) ??
      (await checkUserAccess(req.headers, req.url, userId, this.#options.auth));
    if (refused) return refused;
    // A cross-site form can send neither header, and a foreign page cannot send them without a
    // CORS preflight, which this server never answers. A token in the URL alone is not enough.
    if (
      (req.method === "PUT" || req.method === "DELETE") &&
      req.headers.authorization === undefined &&
      req.headers["x-requested-with"] === undefined
    ) {
      return {
        status: 403,
        code: "forbidden",
        error: `${req.method} needs a header a cross-site form cannot send: 'Authorization: Bearer <token>' or 'X-Requested-With: <anything>'`,
      };
    }
    return undefined;
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    if (!["GET", "HEAD", "PUT", "DELETE"].includes(method)) {
      return sendError(
        res,
        { status: 405, code: "method_not_allowed", error: `method ${method} is not allowed on /files/; use GET, HEAD, PUT or DELETE` },
        { allow: "GET, HEAD, PUT, DELETE" },
      );
    }
    const parsed = parseFilesPath(rawPathname(req.url));
    if (!parsed.ok) return sendError(res, parsed, method === "PUT" ? { connection: "close" } : {});
    const { userId, relative } = parsed.target;
    const refused = await this.#refusal(req, userId);
    if (refused) {
      // A refused upload's body is not read: the connection is closed after the answer rather than drained.
      const headers = {
        ...(refused.status === 401 ? { "www-authenticate": "Bearer" } : {}),
        ...(method === "PUT" ? { connection: "close" } : {}),
      };
      return sendError(res, refused, headers);
    }
    const root = this.#options.workspaces.dirFor(userId);
    switch (method) {
      case "PUT":
        return this.#upload(req, res, userId, root, relative);
      case "DELETE":
        return this.#delete(res, userId, root, relative);
      default:
        return this.#get(req, res, userId, root, relative);
    }
  }

  async #get(req: IncomingMessage, res: ServerResponse, userId: string, root: string, relative: string): Promise<void> {
    const rootReal = await realRoot(root);
    const usedBytes = async () => workspaceUsage(rootReal);
    if (relative === "" || relative === "/") {
      // A workspace not created yet (no tool wrote, nothing uploaded) is empty, not missing.
      const exists = await fs.stat(rootReal).then(
        () => true,
        () => false,
      );
      const listing = exists ? await listTree(rootReal, rootReal, MAX_LISTED, this.#deny) : { entries: [], truncated: false };
      return send(res, 200, {
        user_id: userId,
        path: "",
        ...listing,
        used_bytes: exists ? await usedBytes() : 0,
        limits: this.#limitsJson(),
      });
    }
    const resolved = await resolveInWorkspace(root, relative, { deny: this.#deny });
    if (!resolved.ok) return this.#refused(res, resolved.because, relative);
    let handle;
    try {
      handle = await openInWorkspace(resolved.root, resolved.path, constants.O_RDONLY, { deny: this.#deny });
    } catch (error) {
      // Swapped for a symlink or removed between the check and the open.
      return this.#refused(
        res,
        errorCode(error) === "ENOENT" ? "missing" : error instanceof PathChanged ? "outside" : "unreadable",
        relative,
      );
    }
    let handed = false;
    try {
      const stats = await handle.stat();
      if (stats.isDirectory()) {
        const listing = await listTree(resolved.root, resolved.path, MAX_LISTED, this.#deny);
        const where = path.relative(resolved.root, resolved.path).split(path.sep).join("/");
        return send(res, 200, { user_id: userId, path: where, ...listing, used_bytes: await usedBytes(), limits: this.#limitsJson() });
      }
      if (!stats.isFile()) return sendError(res, { status: 403, code: "forbidden", error: "that path is not a regular file" });
      const name = path.basename(resolved.path);
      const etag = `W/"${stats.size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`;
      const ifRange = req.headers["if-range"];
      const range = ifRange !== undefined && ifRange !== etag ? { kind: "whole" as const } : decideRange(req.headers.range, stats.size);
      const headers: Record<string, string | number> = {
        "content-type": downloadTypeOf(name),
        "content-disposition": attachmentDisposition(name),
        "accept-ranges": "bytes",
        etag,
        "last-modified": stats.mtime.toUTCString(),
        "cache-control": "private, no-cache",
        "x-content-type-options": "nosniff",
        // Opened by mistake in a tab, a downloaded HTML or SVG file can run nothing.
        "content-security-policy": "default-src 'none'; sandbox",
      };
      if (range.kind === "unsatisfiable") {
        return sendError(
          res,
          { status: 416, code: "range_not_satisfiable", error: `the range is outside the file (${stats.size} bytes)` },
          { "content-range": `bytes */${stats.size}` },
        );
      }
      const [start, end] = range.kind === "partial" ? [range.start, range.end] : [0, stats.size - 1];
      if (range.kind === "partial") headers["content-range"] = `bytes ${start}-${end}/${stats.size}`;
      res.writeHead(range.kind === "partial" ? 206 : 200, { ...headers, "content-length": Math.max(0, end - start + 1) });
      if (req.method === "HEAD" || stats.size === 0) return void res.end();
      handed = true;
      // The stream owns the handle from here and closes it on every path (autoClose).
      const stream = handle.createReadStream({ start, end });
      await pipeline(stream, res).catch(() => stream.destroy());
    } finally {
      if (!handed) await handle.close();
    }
  }

  async #upload(req: IncomingMessage, res: ServerResponse, userId: string, root: string, relative: string): Promise<void> {
    // Nothing is read from a body that says up front it is too big; the connection is closed.
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > this.#limits.maxUploadBytes) return this.#uploadRefused(res, tooLarge(this.#limits));
    if (relative === "" || relative.endsWith("/"))
      return this.#uploadRefused(res, {
        status: 400,
        code: "invalid_request",
        error: "name a file to upload to: PUT /files/<user_id>/<path>",
      });
    const resolved = await resolveInWorkspace(root, relative, { allowMissing: true, deny: this.#deny });
    if (!resolved.ok) return this.#uploadRefused(res, refusalOf(resolved.because, relative));
    const outcome = await receiveUpload(
      req,
      { rootReal: resolved.root, path: resolved.path, exists: resolved.exists },
      { userId, limits: this.#limits, reservations: this.#reservations, deny: this.#deny },
    );
    if (!outcome.ok) return this.#uploadRefused(res, outcome);
    const where = path.relative(resolved.root, resolved.path).split(path.sep).join("/");
    this.#options.log.info("file_uploaded", { user_id: userId, path: where, bytes: outcome.size });
    send(res, outcome.created ? 201 : 200, { path: where, size: outcome.size, created: outcome.created });
    this.#options.notify(userId, filesChangedFrame(userId, "upload", [where]));
  }

  /** A refused upload may leave its body unread: the answer closes the connection after it. */
  #uploadRefused(res: ServerResponse, outcome: HttpRefusal & { limit?: string }): void {
    sendError(
      res,
      { status: outcome.status, code: outcome.code, error: outcome.error },
      { connection: "close" },
      outcome.limit ? { limit: `limits.${outcome.limit}` } : {},
    );
  }

  async #delete(res: ServerResponse, userId: string, root: string, relative: string): Promise<void> {
    // The folder holding the entry is checked; the entry itself is removed, never followed: a
    // symlink is unlinked, whatever it points at.
    const parts = relative.split("/").filter((part) => part !== "");
    const name = parts.pop();
    if (name === undefined || name === "." || name === "..")
      return sendError(res, { status: 400, code: "invalid_request", error: "name a file or folder inside the workspace to delete" });
    const parent = await resolveInWorkspace(root, parts.join("/") || ".", { deny: this.#deny });
    if (!parent.ok) return this.#refused(res, parent.because, relative);
    const entry = path.join(parent.path, name);
    if (deniedBy(entry, this.#deny))
      return sendError(res, { status: 403, code: "forbidden", error: "access denied: that is one of the server's own files" });
    const stats = await fs.lstat(entry).catch((error: unknown) => {
      if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return undefined;
      throw error;
    });
    if (!stats) return sendError(res, { status: 404, code: "not_found", error: `no such file or folder: ${relative}` });
    try {
      if (stats.isDirectory()) await fs.rmdir(entry);
      else await fs.unlink(entry);
    } catch (error) {
      if (errorCode(error) === "ENOTEMPTY" || errorCode(error) === "EEXIST")
        return sendError(res, { status: 409, code: "conflict", error: "the folder is not empty: delete what is in it first" });
      throw error;
    }
    const where = path.relative(parent.root, entry).split(path.sep).join("/");
    this.#options.log.info("file_deleted", { user_id: userId, path: where });
    send(res, 200, { path: where, deleted: true });
    this.#options.notify(userId, filesChangedFrame(userId, "delete", [where]));
  }

  #refused(res: ServerResponse, because: RefusedBecause, relative: string): void {
    sendError(res, refusalOf(because, relative));
  }

  #limitsJson() {
    return { max_upload_bytes: this.#limits.maxUploadBytes, workspace_bytes: this.#limits.workspaceBytes };
  }
}

/** The containment check's refusal as an HTTP answer, naming the path as the client gave it, never the server's folders. */
export function refusalOf(because: RefusedBecause, relative: string): HttpRefusal {
  switch (because) {
    case "missing":
      return { status: 404, code: "not_found", error: `no such file or folder: ${relative}` };
    case "not_a_folder":
      return { status: 409, code: "conflict", error: `a file is in the way: part of ${relative} is a file, not a folder` };
    case "symlink_outside":
      return { status: 403, code: "forbidden", error: `access denied: ${relative} leads outside your workspace (through a symlink)` };
    case "server_file":
      return { status: 403, code: "forbidden", error: `access denied: ${relative} is one of the server's own files` };
    case "outside":
      return { status: 403, code: "forbidden", error: `access denied: ${relative} is outside your workspace` };
    case "unreadable":
      return { status: 403, code: "forbidden", error: `access denied: ${relative} cannot be opened` };
    default:
      return because satisfies never;
  }
}
