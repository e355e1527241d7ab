// Receiving one upload: its bytes are reserved against limits.workspace_bytes (lib/files/quota.ts)
// before they are written, the body is streamed to an owner-only temp file in the uploads folder
// (outside every workspace: nothing a user or tool sees or names) opened on the first byte, under
// the per-file cap, and renamed into place only once it is complete. A cut-off, refused or failed
// upload removes its temp file, so nothing partial is ever left or seen.
import { constants, promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import path from "node:path";
import { errorCode, errorMessage } from "../filesystem/containment.ts";
import { fileErrorAnswer } from "./errno.ts";
import { formatBytes } from "./format.ts";
import type { HttpRefusal } from "../protocol.ts";
import { uploadTempName } from "./listing.ts";
import type { Reservation, WorkspaceQuota } from "./quota.ts";

export interface UploadLimits {
  /** limits.max_upload_bytes */
  maxUploadBytes: number;
  /** limits.workspace_bytes */
  workspaceBytes: number;
}

export type UploadOutcome =
  { ok: true; created: boolean; size: number } | ({ ok: false; limit?: "max_upload_bytes" | "workspace_bytes" } & HttpRefusal);

/** A body of unknown length reserves quota in steps of this many bytes (each a walk of the workspace). */
const RESERVE_STEP_BYTES = 1024 * 1024;

export type UploadRefusal = Extract<UploadOutcome, { ok: false }>;

export function tooLarge(limits: UploadLimits): UploadRefusal {
  return {
    ok: false,
    status: 413,
    code: "file_too_large",
    error: `the file is larger than ${formatBytes(limits.maxUploadBytes)}, the most one upload may be (limits.max_upload_bytes)`,
    limit: "max_upload_bytes",
  };
}

function quotaFull(error: string): UploadRefusal {
  return { ok: false, status: 413, error, code: "workspace_full", limit: "workspace_bytes" };
}

/**
 * Hands the body's chunks to `write` one at a time (the body waits while a chunk is written);
 * `write` returning false stops reading without consuming the rest. Resolves "end" when the body
 * was complete, "stopped" when `write` stopped it; rejects when the client cut it off.
 */
function readBody(req: IncomingMessage, write: (chunk: Buffer) => Promise<boolean>): Promise<"end" | "stopped"> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, result: "end" | "stopped" = "end") => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (error) reject(error);
      else resolve(result);
    };
    // The chunk being written: the body's end (which can come while it is) waits for it.
    let writing: Promise<void> | undefined;
    const onData = (chunk: Buffer) => {
      req.pause();
      writing = write(chunk).then(
        (more) => {
          writing = undefined;
          if (more) req.resume();
          else finish(undefined, "stopped");
        },
        (error: unknown) => finish(error instanceof Error ? error : new Error(String(error))),
      );
    };
    const onEnd = () => void (writing ?? Promise.resolve()).then(() => finish(undefined));
    const onError = (error: Error) => finish(error);
    const onClose = () => {
      if (!req.complete) finish(new Error("the upload was cut off before its end"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/**
 * Writes the body of `req` to `target` (a real path inside `rootReal` that resolveInWorkspace
 * returned, existing or to be created), creating missing folders owner-only. `uploadsDir`: the
 * server's folder for temp files, on the same filesystem as the workspaces (so the rename is atomic).
 */
export async function receiveUpload(
  /** The path as the client named it: what an error shows instead of the server's. */
  clientPath: string,
  req: IncomingMessage,
  target: { rootReal: string; path: string; exists: boolean },
  options: { limits: UploadLimits; quota: WorkspaceQuota; uploadsDir: string; declaredBytes: number | undefined },
): Promise<UploadOutcome> {
  const { limits, quota } = options;
  let replaced = 0;
  if (target.exists) {
    const stats = await fs.stat(target.path);
    if (stats.isDirectory()) return { ok: false, status: 409, code: "conflict", error: "that path is a folder: name a file inside it" };
    if (!stats.isFile()) return { ok: false, status: 403, code: "forbidden", error: "that path is not a regular file" };
    replaced = stats.size;
  }
  // A declared length is reserved whole before a byte is read; a body of unknown length in steps.
  const first = await quota.reserve(
    target.rootReal,
    options.declaredBytes ?? Math.min(RESERVE_STEP_BYTES, limits.maxUploadBytes),
    replaced,
  );
  if (!first.ok) return quotaFull(first.error);
  const reservation: Reservation = first.reservation;
  const parent = path.dirname(target.path);
  const temp = path.join(options.uploadsDir, uploadTempName());
  let handle: FileHandle | undefined;
  let opened = false;
  let written = 0;
  let kept = false;
  let refusal: UploadRefusal | undefined;
  const open = async () => {
    opened = true;
    handle = await fs.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  };
  try {
    const ended = await readBody(req, async (chunk) => {
      if (written + chunk.length > limits.maxUploadBytes) {
        refusal = tooLarge(limits);
        return false;
      }
      if (written + chunk.length > reservation.bytes) {
        const more = Math.max(written + chunk.length - reservation.bytes, options.declaredBytes === undefined ? RESERVE_STEP_BYTES : 0);
        const refused = await reservation.grow(Math.min(more, limits.maxUploadBytes - reservation.bytes));
        if (refused !== undefined) {
          refusal = quotaFull(refused);
          return false;
        }
      }
      if (!opened) await open();
      written += chunk.length;
      await handle?.write(chunk);
      return true;
    });
    if (ended === "stopped" && refusal) return refusal;
    if (!opened) await open();
    await handle?.close();
    handle = undefined;
    await fs.mkdir(parent, { recursive: true, mode: 0o700 });
    // The folder must still be the one that was checked: a folder swapped for a symlink meanwhile
    // would move the rename out of the workspace.
    if ((await fs.realpath(parent)) !== parent)
      return { ok: false, status: 409, code: "conflict", error: "the folder changed during the upload; try again" };
    const now = await fs.lstat(target.path).catch((error: unknown) => {
      if (errorCode(error) === "ENOENT") return undefined;
      throw error;
    });
    if (now?.isDirectory()) return { ok: false, status: 409, code: "conflict", error: "that path became a folder during the upload" };
    await fs.rename(temp, target.path);
    kept = true;
    return { ok: true, created: now === undefined, size: written };
  } catch (error) {
    if (refusal) return refusal;
    const known = fileErrorAnswer(error, clientPath);
    if (known) return { ok: false, status: known.status, code: known.code, error: `the upload failed: ${known.error}; nothing was kept` };
    const code = errorCode(error);
    // An fs error's message names the server's path: only its code is told. A body cut off has none.
    return { ok: false, status: 400, code: "upload_failed", error: `the upload failed: ${code ?? errorMessage(error)}; nothing was kept` };
  } finally {
    await handle?.close().catch(() => undefined);
    if (!kept && opened) await fs.rm(temp, { force: true });
    // After the rename the walk counts the file: the reservation is given back only now.
    reservation.release();
  }
}
