// Receiving one upload: the body is streamed to an owner-only temp file beside its target, under
// the per-file and per-workspace caps, and renamed into place only once it is complete. A cut-off,
// refused or failed upload removes its temp file, so nothing partial is ever left or seen.
import { constants, promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import path from "node:path";
import { errorCode, errorMessage, openInWorkspace } from "../filesystem/containment.ts";
import type { HttpRefusal } from "../protocol.ts";
import { uploadTempName, workspaceUsage } from "./listing.ts";

export interface UploadLimits {
  /** limits.max_upload_bytes */
  maxUploadBytes: number;
  /** limits.workspace_bytes */
  workspaceBytes: number;
}

export type UploadOutcome =
  { ok: true; created: boolean; size: number } | ({ ok: false; limit?: "max_upload_bytes" | "workspace_bytes" } & HttpRefusal);

/**
 * Bytes being uploaded per user, not yet in the workspace: concurrent uploads of one user count
 * against the quota together. (Per process: instances of a cluster each keep their own.)
 */
export class UploadReservations {
  readonly #bytes = new Map<string, number>();

  of(userId: string): number {
    return this.#bytes.get(userId) ?? 0;
  }

  add(userId: string, bytes: number): void {
    const left = this.of(userId) + bytes;
    if (left === 0) this.#bytes.delete(userId);
    else this.#bytes.set(userId, left);
  }
}

export function formatBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}

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

function quotaFull(limits: UploadLimits, used: number): UploadRefusal {
  return {
    ok: false,
    status: 413,
    code: "workspace_full",
    error: `the workspace is full: it may hold ${formatBytes(limits.workspaceBytes)} (limits.workspace_bytes) and ${formatBytes(used)} are used. Delete files to make room`,
    limit: "workspace_bytes",
  };
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
 * returned, existing or to be created), creating missing folders owner-only.
 */
export async function receiveUpload(
  req: IncomingMessage,
  target: { rootReal: string; path: string; exists: boolean },
  options: { userId: string; limits: UploadLimits; reservations: UploadReservations; deny: readonly string[] },
): Promise<UploadOutcome> {
  const { limits, reservations, userId } = options;
  let replaced = 0;
  if (target.exists) {
    const stats = await fs.stat(target.path);
    if (stats.isDirectory()) return { ok: false, status: 409, code: "conflict", error: "that path is a folder: name a file inside it" };
    if (!stats.isFile()) return { ok: false, status: 403, code: "forbidden", error: "that path is not a regular file" };
    replaced = stats.size;
  }
  const used = await workspaceUsage(target.rootReal);
  const parent = path.dirname(target.path);
  await fs.mkdir(parent, { recursive: true, mode: 0o700 });
  const temp = path.join(parent, uploadTempName());
  let handle: FileHandle | undefined = await openInWorkspace(
    target.rootReal,
    temp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
    {
      mode: 0o600,
      deny: options.deny,
    },
  );
  let written = 0;
  let kept = false;
  let refusal: UploadRefusal | undefined;
  try {
    const ended = await readBody(req, async (chunk) => {
      if (written + chunk.length > limits.maxUploadBytes) {
        refusal = tooLarge(limits);
        return false;
      }
      reservations.add(userId, chunk.length);
      written += chunk.length;
      if (used - replaced + reservations.of(userId) > limits.workspaceBytes) {
        refusal = quotaFull(limits, used);
        return false;
      }
      await handle?.write(chunk);
      return true;
    });
    if (ended === "stopped" && refusal) return refusal;
    await handle.close();
    handle = undefined;
    // The folder must still be the one the temp file was opened in: a folder swapped for a
    // symlink meanwhile would move the rename out of the workspace.
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
    return { ok: false, status: 400, code: "upload_failed", error: `the upload failed: ${errorMessage(error)}; nothing was kept` };
  } finally {
    reservations.add(userId, -written);
    await handle?.close().catch(() => undefined);
    if (!kept) await fs.rm(temp, { force: true });
  }
}
