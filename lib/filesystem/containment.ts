// The one workspace path check: a path a user names is resolved against that user's root, with
// the real path of the target (or of its nearest existing parent for a new file), and refused
// unless it stays inside. Stateless: every call gets its root; nothing is shared between users.
import { constants, promises as fs } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { expandHome, normalizePath } from "@modelcontextprotocol/server-filesystem/dist/path-utils.js";
import { isPathWithinAllowedDirectories } from "@modelcontextprotocol/server-filesystem/dist/path-validation.js";

export type Resolution =
  | {
      ok: true;
      /** The real, absolute path (of the target, or where it will be created). */ path: string;
      /** The root's real path. */ root: string;
      exists: boolean;
    }
  | { ok: false; error: string; because: RefusedBecause };

/** Why a path was refused, for callers that answer each case differently (the files API's statuses). */
export type RefusedBecause = "outside" | "symlink_outside" | "server_file" | "missing" | "not_a_folder" | "unreadable";

/** What openInWorkspace throws when the file opened is not the one checked (swapped meanwhile). */
export class PathChanged extends Error {
  override name = "PathChanged";
}

export interface ResolveOptions {
  /** Accept a target that does not exist yet (to be created); its nearest existing parent must be inside. */
  allowMissing?: boolean;
  /** Real paths refused even inside the root: the server's own files (secrets, database, logs). */
  deny?: readonly string[];
}

/** True when `candidate` (absolute) is `root` or below it; `alice2` is not below `alice`. */
export function isInside(candidate: string, root: string): boolean {
  return isPathWithinAllowedDirectories(normalizePath(candidate), [root]);
}

/** The denied path that covers `candidate`, if any. */
export function deniedBy(candidate: string, deny: readonly string[] = []): string | undefined {
  return deny.find((denied) => candidate === denied || candidate.startsWith(denied + path.sep));
}

/**
 * The root's real path. A root that does not exist yet (workspaces are created on the first
 * write) is the real path of its nearest existing ancestor plus the rest.
 */
export async function realRoot(root: string): Promise<string> {
  const absolute = path.resolve(root);
  const missing: string[] = [];
  for (let current = absolute; ; current = path.dirname(current)) {
    try {
      return path.join(await fs.realpath(current), ...missing.reverse());
    } catch (error) {
      if (errorCode(error) !== "ENOENT" || current === path.dirname(current)) throw error;
      missing.push(path.basename(current));
    }
  }
}

/**
 * Resolves `requested` (relative to the root, or absolute) for the user whose workspace is `root`.
 * The error texts are those of @modelcontextprotocol/server-filesystem's validatePath, so a
 * model sees the same refusals from the built-in and from the npm server.
 */
export async function resolveInWorkspace(root: string, requested: string, options: ResolveOptions = {}): Promise<Resolution> {
  const rootReal = await realRoot(root);
  const expanded = expandHome(requested);
  if (process.platform !== "win32" && /^(?:[A-Za-z]:)(?:[\\/]|$)/.test(expanded)) {
    return refuse(`Access denied - Windows-style path received on a POSIX host: ${requested}`, "outside");
  }
  const absolute = path.isAbsolute(expanded) ? path.resolve(expanded) : path.resolve(rootReal, expanded);
  if (!isInside(absolute, rootReal))
    return refuse(`Access denied - path outside allowed directories: ${absolute} not in ${rootReal}`, "outside");
  let real: string;
  let exists = true;
  try {
    real = await fs.realpath(absolute);
  } catch (error) {
    if (errorCode(error) !== "ENOENT") return refuseFor(error);
    const parent = await nearestExistingParent(rootReal, absolute);
    if (!parent.ok) return parent;
    real = parent.path;
    exists = false;
  }
  if (!isInside(real, rootReal))
    return refuse(`Access denied - symlink target outside allowed directories: ${real} not in ${rootReal}`, "symlink_outside");
  if (deniedBy(real, options.deny)) return refuse(`Access denied - ${real} is one of the server's own files`, "server_file");
  if (!exists && !options.allowMissing) return refuse(`ENOENT: no such file or directory, '${real}'`, "missing");
  return { ok: true, path: real, root: rootReal, exists };
}

/**
 * A target that does not exist: walk down from the root, resolving each existing component's
 * real path (a symlink among them must stay inside), and append the missing tail.
 */
async function nearestExistingParent(rootReal: string, absolute: string): Promise<Resolution> {
  const parts = path.relative(rootReal, absolute).split(path.sep).filter(Boolean);
  let current = rootReal;
  for (let index = 0; index < parts.length; index++) {
    const candidate = path.join(current, parts[index] ?? "");
    try {
      await fs.lstat(candidate);
    } catch (error) {
      if (errorCode(error) === "ENOENT")
        return { ok: true, path: path.join(current, ...parts.slice(index)), root: rootReal, exists: false };
      return refuseFor(error);
    }
    try {
      current = await fs.realpath(candidate);
    } catch (error) {
      // A dangling symlink: where it points is not ours to create.
      if (errorCode(error) === "ENOENT") return refuse(`Parent directory does not exist: ${path.dirname(absolute)}`, "symlink_outside");
      return refuseFor(error);
    }
    if (!isInside(current, rootReal))
      return refuse(`Access denied - symlink target outside allowed directories: ${current} not in ${rootReal}`, "symlink_outside");
  }
  return { ok: true, path: current, root: rootReal, exists: false };
}

/** Where an open file really is: Linux names it in /proc; elsewhere undefined. */
async function openedPath(handle: FileHandle): Promise<string | undefined> {
  try {
    return (await fs.readlink(`/proc/self/fd/${handle.fd}`)).replace(/ \(deleted\)$/, "");
  } catch {
    return undefined;
  }
}

/**
 * Opens a path that resolveInWorkspace returned, closing the gap between check and use: the
 * last component must not be a symlink (O_NOFOLLOW), and the file actually opened must still be
 * inside the root (its /proc/self/fd link, or else the same inode as the checked path). Opens
 * never block on a FIFO (O_NONBLOCK).
 */
export async function openInWorkspace(
  rootReal: string,
  realPath: string,
  flags: number,
  options: { mode?: number; deny?: readonly string[] } = {},
): Promise<FileHandle> {
  const handle = await fs.open(realPath, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, options.mode);
  try {
    const actual = await openedPath(handle);
    if (actual === undefined) {
      const [opened, checked] = await Promise.all([handle.stat(), fs.stat(realPath)]);
      if (opened.dev !== checked.dev || opened.ino !== checked.ino)
        throw new PathChanged(`Access denied - ${realPath} changed while it was being opened`);
    } else if (!isInside(actual, rootReal) || deniedBy(actual, options.deny)) {
      throw new PathChanged(`Access denied - ${realPath} changed while it was being opened (now ${actual}), outside allowed directories`);
    }
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** A path naming exactly the inode `handle` holds (Linux), for functions that take a path. */
export async function pathOfHandle(handle: FileHandle, fallback: string): Promise<string> {
  return (await openedPath(handle)) === undefined ? fallback : `/proc/self/fd/${handle.fd}`;
}

function refuse(error: string, because: RefusedBecause): Resolution {
  return { ok: false, error, because };
}

/** A file system error on the way to the target, by its errno code. */
function refuseFor(error: unknown): Resolution {
  return refuse(errorMessage(error), errorCode(error) === "ENOTDIR" ? "not_a_folder" : "unreadable");
}

export function errorCode(error: unknown): string | undefined {
  return error instanceof Error && "code" in error && typeof error.code === "string" ? error.code : undefined;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
