// The user's workspace over HTTP (/files/<user_id>/…, docs/files.md): --upload, and /files,
// /download and /upload in a terminal. Same server, user and token as the socket.
import { createReadStream, createWriteStream, promises as fs } from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { formatBytes } from "../page/format.js";
import { isRecord, isString } from "./frames.ts";
import { ClientError, EXIT_CONNECTION, EXIT_TURN_ERROR, type ClientOptions } from "./options.ts";

export interface RemoteEntry {
  path: string;
  type: "file" | "folder";
  size: number;
  modified: string;
}

export interface RemoteListing {
  entries: RemoteEntry[];
  truncated: boolean;
  usedBytes: number;
  workspaceBytes: number | undefined;
}

/** The files URL of the user, from the socket URL: ws(s)://host/base/ws/<user> → http(s)://host/base/files/<user>. */
export function filesUrl(options: ClientOptions, relative = ""): string {
  const url = new URL(options.target.url);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.search = "";
  url.pathname = url.pathname.replace(/\/ws\/[^/]*$/, `/files/${encodeURIComponent(options.user)}`);
  if (relative) url.pathname += `/${relative.split("/").filter(Boolean).map(encodeURIComponent).join("/")}`;
  return url.href;
}

function headers(options: ClientOptions, extra: Record<string, string> = {}): Record<string, string> {
  // X-Requested-With: the server refuses a PUT or DELETE that a cross-site form could have sent.
  return { "x-requested-with": "mcp-agent-client", ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...extra };
}

async function refusal(response: Response, what: string): Promise<ClientError> {
  let reason = `HTTP ${response.status}`;
  try {
    const body: unknown = await response.json();
    if (isRecord(body) && isString(body.error)) reason = `${reason}: ${body.error}`;
  } catch {
    // Not JSON: the status says enough.
  }
  return new ClientError(`${what}: ${reason}`, EXIT_TURN_ERROR);
}

async function request(url: string, init: RequestInit & { duplex?: "half" }, what: string): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : String(error);
    throw new ClientError(`${what}: cannot reach ${new URL(url).host} (${cause})`, EXIT_CONNECTION);
  }
}

// One copy of the size format the page shows too (page/format.js).
export { formatBytes as formatSize };

/** Uploads a local file into the workspace root under its own name; resolves with its path there. */
export async function uploadFile(options: ClientOptions, localPath: string): Promise<{ path: string; size: number }> {
  const what = `cannot upload ${localPath}`;
  let stats;
  try {
    stats = await fs.stat(localPath);
  } catch (error) {
    throw new ClientError(
      `${what}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`,
      EXIT_TURN_ERROR,
    );
  }
  if (!stats.isFile()) throw new ClientError(`${what}: not a regular file`, EXIT_TURN_ERROR);
  const name = path.basename(localPath);
  const body = Readable.toWeb(createReadStream(localPath)) as unknown as BodyInit;
  const response = await request(
    filesUrl(options, name),
    {
      method: "PUT",
      headers: headers(options, { "content-length": String(stats.size), "content-type": "application/octet-stream" }),
      body,
      duplex: "half",
    },
    what,
  );
  if (!response.ok) throw await refusal(response, what);
  const answer: unknown = await response.json();
  return { path: isRecord(answer) && isString(answer.path) ? answer.path : name, size: stats.size };
}

export async function listFiles(options: ClientOptions): Promise<RemoteListing> {
  const what = "cannot list the workspace";
  const response = await request(filesUrl(options), { headers: headers(options) }, what);
  if (!response.ok) throw await refusal(response, what);
  const body: unknown = await response.json();
  if (!isRecord(body) || !Array.isArray(body.entries)) throw new ClientError(`${what}: the answer is not a listing`, EXIT_TURN_ERROR);
  const entries = body.entries.flatMap((entry: unknown): RemoteEntry[] =>
    isRecord(entry) && isString(entry.path) && (entry.type === "file" || entry.type === "folder")
      ? [
          {
            path: entry.path,
            type: entry.type,
            size: typeof entry.size === "number" ? entry.size : 0,
            modified: isString(entry.modified) ? entry.modified : "",
          },
        ]
      : [],
  );
  const limits = isRecord(body.limits) ? body.limits : {};
  return {
    entries,
    truncated: body.truncated === true,
    usedBytes: typeof body.used_bytes === "number" ? body.used_bytes : 0,
    workspaceBytes: typeof limits.workspace_bytes === "number" ? limits.workspace_bytes : undefined,
  };
}

/** `2026-11-29 14:05` in local time. */
function localMinute(date: Date): string {
  if (Number.isNaN(date.getTime())) return "";
  const two = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${two(date.getHours())}:${two(date.getMinutes())}`;
}

/** The listing as lines for a terminal: size, time, path (folders end with /). */
export function formatListing(listing: RemoteListing): string[] {
  if (listing.entries.length === 0) return ["(no files)"];
  const lines = listing.entries.map((entry) => {
    const size = entry.type === "folder" ? "" : formatBytes(entry.size);
    const when = entry.modified ? localMinute(new Date(entry.modified)) : "";
    return `${size.padStart(9)}  ${when.padEnd(16)}  ${entry.path}${entry.type === "folder" ? "/" : ""}`;
  });
  const quota = listing.workspaceBytes === undefined ? "" : ` of ${formatBytes(listing.workspaceBytes)}`;
  lines.push(`${formatBytes(listing.usedBytes)}${quota} used${listing.truncated ? " (list cut: too many entries)" : ""}`);
  return lines;
}

/**
 * Downloads a workspace file to `dest` (default: its name in the current folder; a folder: its
 * name in it). Written to a temp file beside it and renamed, so a cut download leaves nothing.
 */
export async function downloadFile(options: ClientOptions, remotePath: string, dest?: string): Promise<{ path: string; size: number }> {
  const what = `cannot download ${remotePath}`;
  const name = path.posix.basename(remotePath);
  let target = dest ?? name;
  if (
    await fs.stat(target).then(
      (stats) => stats.isDirectory(),
      () => false,
    )
  )
    target = path.join(target, name);
  const response = await request(filesUrl(options, remotePath), { headers: headers(options) }, what);
  if (!response.ok || !response.body) throw await refusal(response, what);
  if ((response.headers.get("content-type") ?? "").startsWith("application/json") && !response.headers.get("content-disposition")) {
    await response.body.cancel();
    throw new ClientError(`${what}: that is a folder`, EXIT_TURN_ERROR);
  }
  const temp = `${target}.part-${process.pid}`;
  try {
    await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), createWriteStream(temp, { flags: "wx" }));
    await fs.rename(temp, target);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw new ClientError(`${what}: ${(error as Error).message}`, EXIT_TURN_ERROR);
  }
  return { path: target, size: (await fs.stat(target)).size };
}
