// What the Files panel and `GET /files/<user_id>` show: the workspace as a flat, sorted list of
// files and folders (the page makes the tree), and how many bytes it holds (for the quota).
import { randomBytes } from "node:crypto";
import { promises as fs, type Dirent } from "node:fs";
import path from "node:path";
import { deniedBy, errorCode, isInside } from "../filesystem/containment.ts";
import { mimeTypeOf } from "./mime.ts";

export interface FileEntry {
  /** Relative to the workspace, `/`-separated. */
  path: string;
  name: string;
  type: "file" | "folder";
  /** Bytes; 0 for a folder. */
  size: number;
  /** ISO 8601. */
  modified: string;
  /** Files only. */
  mime?: string;
}

export interface Listing {
  entries: FileEntry[];
  /** The walk stopped at the entry cap; the list is incomplete. */
  truncated: boolean;
}

/**
 * An upload in progress is written to a file of this name in the uploads folder (outside every
 * workspace: see Workspaces.uploadsDir), and renamed into the workspace when complete.
 */
export function uploadTempName(): string {
  return `upload-${randomBytes(8).toString("hex")}.part`;
}

/** A folder that vanished while it was walked (deleted by a tool meanwhile) is simply empty. */
async function entriesOf(dir: string): Promise<Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (error) {
    if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return [];
    throw error;
  }
}

/**
 * Everything below `startReal` (a real path inside `rootReal`), at most `maxEntries`. A symlink
 * is shown only when it leads to a file inside the workspace (as that file); folders reached
 * through a symlink are not entered, so a loop cannot make the walk endless.
 */
export async function listTree(rootReal: string, startReal: string, maxEntries: number, deny: readonly string[]): Promise<Listing> {
  const entries: FileEntry[] = [];
  const pending = [startReal];
  let truncated = false;
  while (pending.length > 0 && !truncated) {
    const dir = pending.pop() ?? startReal;
    for (const dirent of await entriesOf(dir)) {
      const full = path.join(dir, dirent.name);
      if (deniedBy(full, deny)) continue;
      let stats;
      try {
        if (dirent.isSymbolicLink()) {
          const target = await fs.realpath(full);
          if (!isInside(target, rootReal) || deniedBy(target, deny)) continue;
          stats = await fs.stat(target);
          if (!stats.isFile()) continue;
        } else {
          stats = await fs.lstat(full);
        }
      } catch (error) {
        // Gone between readdir and stat, or a dangling link: not there to show.
        if (errorCode(error) === "ENOENT" || errorCode(error) === "ELOOP") continue;
        throw error;
      }
      if (!stats.isFile() && !stats.isDirectory()) continue;
      if (entries.length >= maxEntries) {
        truncated = true;
        break;
      }
      const relative = path.relative(rootReal, full).split(path.sep).join("/");
      if (stats.isDirectory()) {
        entries.push({ path: relative, name: dirent.name, type: "folder", size: 0, modified: stats.mtime.toISOString() });
        pending.push(full);
      } else {
        entries.push({
          path: relative,
          name: dirent.name,
          type: "file",
          size: stats.size,
          modified: stats.mtime.toISOString(),
          mime: mimeTypeOf(dirent.name),
        });
      }
    }
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { entries, truncated };
}

/**
 * Bytes of every regular file in the workspace, whatever its name (symlinks not followed; uploads
 * in progress are outside the workspace and held as reservations: lib/files/quota.ts).
 */
export async function workspaceUsage(rootReal: string): Promise<number> {
  let total = 0;
  const pending = [rootReal];
  while (pending.length > 0) {
    const dir = pending.pop() ?? rootReal;
    for (const dirent of await entriesOf(dir)) {
      if (dirent.isDirectory()) pending.push(path.join(dir, dirent.name));
      else if (dirent.isFile()) {
        total += await fs.lstat(path.join(dir, dirent.name)).then(
          (stats) => stats.size,
          () => 0,
        );
      }
    }
  }
  return total;
}
